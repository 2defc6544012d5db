import { Transform, type TransformCallback } from 'node:stream';
import { UserError } from '../errors.js';

/**
 * Sits between an upload and the CSV parser: stops a file over the size limit, a file that is not
 * UTF-8 (a BOM is fine), and a binary file (a spreadsheet saved as .xlsx, say) with a clear error,
 * before anything is imported. Passes bytes through unchanged.
 */
export class UploadGuard extends Transform {
  private bytes = 0;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const offset = this.bytes;
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      return callback(
        new UserError(
          'CSV_TOO_LARGE',
          `the file is larger than the ${formatBytes(this.maxBytes)} limit (HERALD_MAX_UPLOAD_BYTES)`,
          413,
        ),
      );
    }
    const nul = chunk.indexOf(0);
    if (nul >= 0) {
      return callback(
        new UserError(
          'CSV_NOT_TEXT',
          `byte ${offset + nul + 1} is a NUL: this looks like a binary file (a spreadsheet?); export it as CSV (UTF-8)`,
          415,
        ),
      );
    }
    try {
      this.utf8.decode(chunk, { stream: true });
    } catch {
      return callback(
        new UserError(
          'CSV_NOT_UTF8',
          `the file is not UTF-8 (invalid bytes near byte ${offset + 1}); save it as CSV UTF-8`,
          415,
        ),
      );
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.utf8.decode(); // a multi-byte character cut off at the end of the file
    } catch {
      return callback(
        new UserError(
          'CSV_NOT_UTF8',
          'the file is not UTF-8 (it ends inside a character); save it as CSV UTF-8',
          415,
        ),
      );
    }
    callback();
  }
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${Math.round(bytes / 1024 / 1024)} MiB`
    : `${Math.round(bytes / 1024)} KiB`;
}

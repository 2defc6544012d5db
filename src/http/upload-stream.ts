import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { UserError } from '../errors.js';

/**
 * The uploaded CSV as a stream, from a `text/csv` body or the file part of a
 * `multipart/form-data` form (plus the form's text fields sent before the file). Never buffered:
 * the importer reads it as it arrives and enforces the size limit itself.
 */
export async function uploadStream(
  request: FastifyRequest,
  maxBytes: number,
): Promise<{ stream: Readable; fields: Record<string, string> }> {
  const type = request.headers['content-type'] ?? '';
  if (/^(text|application)\/csv\b/i.test(type))
    return { stream: request.body as Readable, fields: {} };
  if (/^multipart\/form-data\b/i.test(type)) {
    // One byte over the limit lets the importer's guard see the excess and refuse the file.
    const file = await request.file({ limits: { fileSize: maxBytes + 1, files: 1 } });
    if (!file)
      throw new UserError(
        'UPLOAD_FILE_MISSING',
        'the form has no file part; attach the CSV as a file field',
      );
    const fields: Record<string, string> = {};
    for (const [name, field] of Object.entries(file.fields)) {
      const value = Array.isArray(field) ? field[0] : field;
      if (value && value.type === 'field') fields[name] = String(value.value);
    }
    return { stream: file.file, fields };
  }
  throw new UserError(
    'UNSUPPORTED_MEDIA_TYPE',
    'send the list as text/csv, or as multipart/form-data with the CSV in a file field',
    415,
  );
}

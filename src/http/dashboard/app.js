// Herald dashboard: plain browser JavaScript, no build step, no third-party code. It only talks to
// Herald's own /v1 API with the API key the user typed, kept in sessionStorage so that it is gone
// when the tab closes. Every value from the API is written with textContent, never as HTML.
/* global document, window, sessionStorage, fetch, FormData, location, setTimeout, clearTimeout, confirm, Blob, URL */
'use strict';

const KEY_STORAGE = 'herald.apiKey';
const POLL_MS = 2000;
/** The report scans the campaign's messages, so it is fetched less often than the counters. */
const REPORT_EVERY_POLLS = 3;

const $ = (selector) => document.querySelector(selector);
const views = ['login-view', 'list-view', 'new-view', 'campaign-view'];
let pollTimer;
let pollCount = 0;
/** The import report shown on the campaign page after a create-and-upload. */
let lastImport = null;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function show(view) {
  for (const id of views) document.getElementById(id).hidden = id !== view;
  $('#nav').hidden = view === 'login-view';
}

function flash(message, kind = 'error') {
  const box = $('#flash');
  box.textContent = message;
  box.className = kind === 'info' ? 'info' : '';
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  const headers = { authorization: `Bearer ${key}`, ...(options.headers ?? {}) };
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method: options.method ?? 'GET',
    headers,
    body: options.json !== undefined ? JSON.stringify(options.json) : options.body,
  });
  if (response.status === 401) {
    sessionStorage.removeItem(KEY_STORAGE);
    route();
    throw new ApiError(401, 'UNAUTHORIZED', 'That API key was not accepted.');
  }
  const type = response.headers.get('content-type') ?? '';
  const body = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) {
    const error = body && body.error ? body.error : { code: 'HTTP_' + response.status };
    throw new ApiError(response.status, error.code, error.message ?? String(body), error.details);
  }
  return body;
}

const describe = (error) => (error.code ? `${error.code}: ${error.message}` : String(error));
const pct = (part, whole) => (whole > 0 ? Math.floor((part / whole) * 1000) / 10 : 0);
const formatNumber = (n) => Number(n).toLocaleString('en');
const formatTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');

function progressBar(percent, big = false) {
  const fill = el('div', { class: percent >= 100 ? 'fill done' : 'fill' });
  fill.style.width = `${Math.min(100, percent)}%`;
  return el('div', { class: big ? 'bar big' : 'bar' }, fill);
}

// ---- routing ---------------------------------------------------------------------------------

function route() {
  clearTimeout(pollTimer);
  pollCount = 0;
  if (!sessionStorage.getItem(KEY_STORAGE)) {
    show('login-view');
    $('#api-key').focus();
    return;
  }
  const hash = location.hash || '#/';
  const campaign = /^#\/campaigns\/([0-9a-f-]+)$/i.exec(hash);
  if (campaign) return openCampaign(campaign[1]);
  if (hash === '#/new') return openNew();
  return openList();
}

// ---- campaign list -------------------------------------------------------------------------

async function openList() {
  show('list-view');
  try {
    const { campaigns } = await api('/v1/campaigns');
    const body = $('#campaigns tbody');
    body.replaceChildren(
      ...campaigns.map((c) => {
        const p = c.progress ?? { total: 0, processed: 0, delivered: 0, failed: 0 };
        const percent = pct(p.processed, p.total);
        const row = el(
          'tr',
          { class: 'clickable', 'data-campaign-id': c.id },
          el('td', {}, el('a', { href: `#/campaigns/${c.id}`, text: c.name })),
          el('td', { text: c.accountName }),
          el('td', {}, el('span', { class: `status ${c.status}`, text: c.status })),
          el(
            'td',
            {},
            el(
              'div',
              { class: 'progress-cell' },
              progressBar(percent),
              el('span', { class: 'num', text: `${percent}%` }),
            ),
          ),
          el('td', { class: 'num', text: formatNumber(p.delivered) }),
          el('td', { class: 'num', text: formatNumber(p.failed) }),
          el('td', { text: formatTime(c.createdAt) }),
        );
        row.addEventListener('click', (event) => {
          if (event.target.tagName !== 'A') location.hash = `#/campaigns/${c.id}`;
        });
        return row;
      }),
    );
    $('#campaigns-empty').hidden = campaigns.length > 0;
  } catch (error) {
    flash(describe(error));
  }
  if ((location.hash || '#/') === '#/') pollTimer = setTimeout(openList, POLL_MS);
}

// ---- create and upload -----------------------------------------------------------------------

async function openNew() {
  show('new-view');
  try {
    const { accounts } = await api('/v1/accounts');
    const select = $('#c-account');
    const current = select.value;
    select.replaceChildren(
      ...accounts.map((a) =>
        el('option', { value: a.name, text: a.paused ? `${a.name} (paused)` : a.name }),
      ),
    );
    if (current) select.value = current;
  } catch (error) {
    flash(describe(error));
  }
}

async function uploadList(campaignId, file, phoneColumn) {
  const form = new FormData();
  // Text fields go before the file: the server reads the form as a stream.
  if (phoneColumn) form.append('phoneColumn', phoneColumn);
  form.append('file', file, file.name);
  return api(`/v1/campaigns/${campaignId}/recipients`, { method: 'POST', body: form });
}

async function createCampaign(event) {
  event.preventDefault();
  flash('');
  const form = event.target;
  const button = $('#create-button');
  button.disabled = true;
  try {
    const campaign = await api('/v1/campaigns', {
      method: 'POST',
      json: {
        name: $('#c-name').value,
        account: $('#c-account').value,
        template: $('#c-template').value,
      },
    });
    try {
      lastImport = {
        campaignId: campaign.id,
        report: await uploadList(
          campaign.id,
          $('#c-file').files[0],
          $('#c-phone-column').value.trim(),
        ),
      };
    } catch (error) {
      lastImport = { campaignId: campaign.id, error };
    }
    form.reset();
    location.hash = `#/campaigns/${campaign.id}`;
  } catch (error) {
    flash(describe(error));
  } finally {
    button.disabled = false;
  }
}

function renderImport(target, campaignId, result) {
  if (result.error) {
    const details = result.error.details;
    target.replaceChildren(
      el(
        'div',
        { class: 'report', 'data-testid': 'import-error' },
        el('p', { text: `Nothing imported. ${describe(result.error)}` }),
        details && details.columns
          ? el('p', { class: 'hint', text: `Columns found: ${details.columns.join(', ')}` })
          : '',
      ),
    );
    return;
  }
  const r = result.report;
  const dl = el('dl');
  for (const [label, value] of [
    ['Rows', r.rows],
    ['Accepted', r.accepted],
    ['Rejected', r.rejected],
    ['Duplicates', r.duplicates],
    ['Suppressed', r.suppressed],
    ['Phone column', r.phoneColumn],
  ])
    dl.append(el('dt', { text: label }), el('dd', { text: String(value) }));
  const parts = [el('h3', { text: 'Validation report' }), dl];
  if (r.rejections.length > 0) {
    parts.push(
      el('ul', {}, ...r.rejections.map((x) => el('li', { text: `line ${x.line}: ${x.reason}` }))),
    );
    const link = el('button', {
      type: 'button',
      class: 'link-dark',
      text: 'Download all rejected rows (CSV)',
    });
    link.addEventListener('click', () =>
      download(
        `/v1/campaigns/${campaignId}/imports/${r.importId}/rejections.csv`,
        `rejections-${r.importId}.csv`,
      ),
    );
    parts.push(link);
  }
  target.replaceChildren(el('div', { class: 'report', 'data-testid': 'import-report' }, ...parts));
}

async function download(path, filename) {
  try {
    const text = await api(path);
    const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    const a = el('a', { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    URL.revokeObjectURL(url);
  } catch (error) {
    flash(describe(error));
  }
}

// ---- one campaign ----------------------------------------------------------------------------

let current = null;

async function openCampaign(id) {
  if (!current || current.id !== id) {
    current = { id, status: null, report: null };
    $('#import-report').replaceChildren();
    $('#funnel').replaceChildren();
    $('#chart').replaceChildren();
  }
  show('campaign-view');
  if (lastImport && lastImport.campaignId === id) renderImport($('#import-report'), id, lastImport);
  await refreshCampaign(id);
}

async function refreshCampaign(id) {
  if (!current || current.id !== id || location.hash !== `#/campaigns/${id}`) return;
  try {
    const stats = await api(`/v1/campaigns/${id}`);
    const statusChanged = current.status !== stats.campaign.status;
    current.status = stats.campaign.status;
    renderStats(stats);
    if (pollCount % REPORT_EVERY_POLLS === 0 || statusChanged || !current.report) {
      current.report = await api(`/v1/campaigns/${id}/report`);
      renderReport(current.report);
    }
    if (!$('#import-report').hasChildNodes()) await renderImports(id);
  } catch (error) {
    flash(describe(error));
  }
  pollCount += 1;
  pollTimer = setTimeout(() => refreshCampaign(id), POLL_MS);
}

async function renderImports(id) {
  const { imports } = await api(`/v1/campaigns/${id}/imports`);
  if (imports.length === 0) {
    $('#import-report').replaceChildren(el('p', { class: 'hint', text: 'No list imported yet.' }));
    return;
  }
  const latest = imports[imports.length - 1];
  renderImport($('#import-report'), id, {
    report: { ...latest, importId: latest.id, rejections: [] },
  });
}

function renderStats(stats) {
  const c = stats.campaign;
  $('#cv-name').textContent = c.name;
  const status = $('#cv-status');
  status.textContent = c.status;
  status.className = `status ${c.status}`;
  $('#cv-account').textContent = `account ${c.account}`;
  $('#cv-eta').textContent = stats.eta
    ? `${stats.eta.ratePerSecond.toFixed(1)} msg/s, about ${Math.ceil(stats.eta.remainingSeconds)} s left`
    : '';

  const percent = pct(stats.processed, stats.total);
  const fill = $('#cv-progress-fill');
  fill.style.width = `${Math.min(100, percent)}%`;
  fill.className = percent >= 100 ? 'fill done' : 'fill';
  $('#cv-progress').textContent = `${percent}%`;
  $('#cv-progress-detail').textContent =
    ` ${formatNumber(stats.processed)} of ${formatNumber(stats.total)} processed` +
    (stats.deliveryRate === null ? '' : `, ${(stats.deliveryRate * 100).toFixed(1)}% delivered`);

  const s = c.status;
  const enable = {
    start: s === 'DRAFT' || s === 'SCHEDULED',
    schedule: s === 'DRAFT' || s === 'SCHEDULED',
    pause: s === 'RUNNING',
    resume: s === 'PAUSED',
    cancel: s !== 'COMPLETED' && s !== 'CANCELLED',
  };
  for (const [action, on] of Object.entries(enable)) $(`#btn-${action}`).disabled = !on;
  $('#schedule-at').disabled = !enable.schedule;
  $('#schedule-zone').textContent = "(in the campaign's time zone)";
  $('#upload-form').hidden = s !== 'DRAFT';

  const sentToProvider =
    stats.counts.SCHEDULED +
    stats.counts.SENT +
    stats.counts.DELIVERED +
    stats.counts.EXPIRED +
    stats.counts.UNDELIVERABLE +
    stats.counts.FAILED +
    stats.counts.REJECTED +
    stats.counts.UNKNOWN;
  const rows = [
    ['Recipients', stats.total, ''],
    ['Processed', stats.processed, ''],
    ['Sent', sentToProvider, ''],
    ['Awaiting report', stats.awaitingReport, 'awaiting'],
    ...(stats.scheduledAtProvider > 0
      ? [['Held by provider for later', stats.scheduledAtProvider, 'awaiting']]
      : []),
    ['Delivered', stats.delivered, 'delivered'],
    ['Failed', stats.failed, 'failed'],
  ];
  if (stats.counts.SUPPRESSED) rows.push(['Suppressed', stats.counts.SUPPRESSED, 'failed']);
  if (stats.counts.CANCELLED) rows.push(['Cancelled', stats.counts.CANCELLED, '']);
  $('#funnel').replaceChildren(
    ...rows.map(([label, value, kind]) => {
      const bar = progressBar(pct(value, stats.total));
      bar.firstChild.className = `fill ${kind}`;
      return el(
        'div',
        { class: 'funnel-row', 'data-funnel': label },
        el('span', { text: label }),
        bar,
        el('span', { class: 'num', text: formatNumber(value) }),
      );
    }),
  );
}

function renderReport(report) {
  const failures = report.failuresByReason ?? [];
  $('#failures tbody').replaceChildren(
    ...failures.map((f) =>
      el(
        'tr',
        {},
        el('td', { text: f.status }),
        el('td', { text: f.code }),
        el('td', { class: 'num', text: formatNumber(f.count) }),
      ),
    ),
  );
  $('#failures-empty').hidden = failures.length > 0;
  renderChart(report);
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Messages sent per second in each throughput bucket, as bars; the average as a caption. */
function renderChart(report) {
  const target = $('#chart');
  const buckets = report.throughput ?? [];
  const seconds = report.throughputBucketSeconds || 60;
  if (buckets.length === 0) {
    target.replaceChildren(el('p', { class: 'hint', text: 'Nothing sent yet.' }));
    return;
  }
  const width = 520;
  const height = 200;
  const left = 44;
  const bottom = 22;
  const plotWidth = width - left - 8;
  const plotHeight = height - bottom - 10;
  const start = new Date(buckets[0].at).getTime();
  const end = new Date(buckets[buckets.length - 1].at).getTime() + seconds * 1000;
  const slots = Math.max(1, Math.round((end - start) / (seconds * 1000)));
  const rates = buckets.map((b) => b.sent / seconds);
  const max = Math.max(...rates, 0.001);
  const chart = svg('svg', {
    class: 'chart',
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': 'messages sent per second over time',
  });
  for (const fraction of [0, 0.5, 1]) {
    const y = 10 + plotHeight * (1 - fraction);
    chart.append(svg('line', { class: 'grid-line', x1: left, x2: width - 8, y1: y, y2: y }));
    chart.append(
      svg('text', { x: left - 6, y: y + 3, 'text-anchor': 'end' }, (max * fraction).toFixed(1)),
    );
  }
  const slotWidth = plotWidth / slots;
  buckets.forEach((bucket, i) => {
    const slot = Math.round((new Date(bucket.at).getTime() - start) / (seconds * 1000));
    const barHeight = (rates[i] / max) * plotHeight;
    // Buckets holding only delivery reports (no sends) draw nothing.
    if (barHeight <= 0) return;
    const rect = svg('rect', {
      class: 'sent',
      x: left + slot * slotWidth + 1,
      y: 10 + plotHeight - barHeight,
      width: Math.max(1, slotWidth - 2),
      height: barHeight,
    });
    rect.append(
      svg('title', {}, `${new Date(bucket.at).toLocaleTimeString()}: ${rates[i].toFixed(1)} msg/s`),
    );
    chart.append(rect);
  });
  chart.append(
    svg('line', {
      class: 'axis',
      x1: left,
      x2: width - 8,
      y1: 10 + plotHeight,
      y2: 10 + plotHeight,
    }),
  );
  chart.append(svg('text', { x: left, y: height - 6 }, new Date(start).toLocaleTimeString()));
  chart.append(
    svg(
      'text',
      { x: width - 8, y: height - 6, 'text-anchor': 'end' },
      new Date(end).toLocaleTimeString(),
    ),
  );
  const caption = el('p', {
    class: 'hint',
    text:
      `msg/s per ${seconds >= 60 ? `${seconds / 60}-minute` : `${seconds}-second`} bucket` +
      (report.sendRate ? `; average ${report.sendRate.toFixed(1)} msg/s` : ''),
  });
  target.replaceChildren(chart, caption);
}

async function campaignAction(action) {
  if (!current) return;
  flash('');
  if (action === 'cancel' && !confirm('Cancel this campaign? Unsent messages will not be sent.'))
    return;
  const options = { method: 'POST' };
  if (action === 'schedule') {
    const at = $('#schedule-at').value;
    if (!at) return flash('Pick a date and time to schedule.');
    // datetime-local gives 2026-12-04T10:00: the API reads it in the campaign's time zone.
    options.json = { at: at.replace('T', ' ') };
  }
  try {
    await api(`/v1/campaigns/${current.id}/${action}`, options);
    pollCount = 0;
    clearTimeout(pollTimer);
    await refreshCampaign(current.id);
  } catch (error) {
    flash(describe(error));
  }
}

async function uploadMore(event) {
  event.preventDefault();
  flash('');
  const form = event.target;
  try {
    lastImport = {
      campaignId: current.id,
      report: await uploadList(
        current.id,
        $('#u-file').files[0],
        $('#u-phone-column').value.trim(),
      ),
    };
  } catch (error) {
    lastImport = { campaignId: current.id, error };
  }
  form.reset();
  renderImport($('#import-report'), current.id, lastImport);
}

// ---- wiring ----------------------------------------------------------------------------------

$('#login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const key = $('#api-key').value.trim();
  sessionStorage.setItem(KEY_STORAGE, key);
  try {
    await api('/v1/accounts');
    flash('');
    $('#api-key').value = '';
    route();
  } catch (error) {
    sessionStorage.removeItem(KEY_STORAGE);
    flash(describe(error));
  }
});
$('#logout').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  current = null;
  route();
});
$('#create-form').addEventListener('submit', createCampaign);
$('#upload-form').addEventListener('submit', uploadMore);
for (const button of document.querySelectorAll('[data-action]'))
  button.addEventListener('click', () => campaignAction(button.dataset.action));
window.addEventListener('hashchange', () => {
  flash('');
  route();
});
route();

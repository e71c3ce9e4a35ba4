// One message: its header lines, actions and tabs. The message's HTML is
// untrusted: it is shown in an iframe with sandbox="allow-popups ..."
// (no allow-scripts, no allow-same-origin, no allow-forms, no
// allow-top-navigation: an opaque origin that runs no script, submits no
// form, cannot read the API and cannot navigate this page), with its own
// Content-Security-Policy in front of the HTML: nothing is fetched but
// data: images, until the user allows remote content for that message.
import { json, request } from './api.js';
import { el, clear, formatSize, fullTime, addressText, copyButton, saveBlob, toast } from './util.js';

const TABS = [
  ['html', 'HTML'], ['source', 'HTML source'], ['text', 'Text'], ['raw', 'Raw'],
  ['headers', 'Headers'], ['mime', 'MIME'], ['attachments', 'Attachments'],
  ['envelope', 'Envelope'],
];
const WIDTHS = [['desktop', 'Desktop', '100%'], ['tablet', 'Tablet', '768px'],
  ['phone', 'Phone', '375px']];
const RAW_SHOW_MAX = 2 * 1024 * 1024;
const INLINE_MAX = 5 * 1024 * 1024;
const REMOTE = /(?:src|href|background|poster|srcset)\s*=\s*["']?\s*(?:https?:)?\/\/|url\(\s*["']?\s*(?:https?:)?\/\//i;

const CSP_BLOCKED = "default-src 'none'; img-src data: blob:; style-src 'unsafe-inline'; font-src data:";
const CSP_REMOTE = "default-src 'none'; img-src * data: blob:; style-src * 'unsafe-inline'; " +
  'font-src * data:; media-src *';

// The document the iframe gets: our policy first (before any element of
// the message, so it covers them all), after a doctype if there is one
// (so the message keeps its rendering mode); meta refresh taken out (a
// sandbox does not stop it from loading a remote page into the frame).
export function frameDocument(html, allowRemote) {
  const head = `<meta http-equiv="Content-Security-Policy" content="${allowRemote ? CSP_REMOTE : CSP_BLOCKED}">` +
    '<base target="_blank">';
  const clean = html.replace(/<meta[^>]+http-equiv\s*=\s*["']?refresh[^>]*>/gi, '');
  const m = /^\s*<!doctype[^>]*>/i.exec(clean);
  return m ? m[0] + head + clean.slice(m[0].length) : head + clean;
}

export class MessageView {
  constructor(root, { onDeleted, onChanged, onBack, relayEnabled }) {
    this.root = root;
    this.onDeleted = onDeleted;
    this.onChanged = onChanged;
    this.onBack = onBack;
    this.relayEnabled = relayEnabled;
    this.tab = 'html';
    this.width = 'desktop';
    this.msg = null;
    this.summary = null;
    this.allowRemote = new Set();   // IDs whose remote content the user allowed
    this.objectUrls = [];
  }

  close() {
    this.msg = null;
    this.releaseUrls();
    clear(this.root);
    this.root.hidden = true;
  }

  releaseUrls() {
    for (const u of this.objectUrls) URL.revokeObjectURL(u);
    this.objectUrls = [];
  }

  async show(id, summary) {
    const msg = await json(`/api/v1/message/${encodeURIComponent(id)}`);   // marks it read
    this.msg = msg;
    this.summary = summary || null;
    if (this.summary) this.summary.Read = true;
    this.releaseUrls();
    if (!msg.HTML && this.tab === 'html') this.tab = 'text';
    if (msg.HTML && this.tab === 'text' && !this.userPickedText) this.tab = 'html';
    this.render();
    return msg;
  }

  render() {
    const m = this.msg;
    clear(this.root);
    this.root.hidden = false;
    const tablist = el('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Message parts' });
    for (const [key, label] of TABS) {
      const count = key === 'attachments' ? (m.Attachments.length + m.Inline.length) : null;
      const b = el('button', {
        type: 'button', role: 'tab', id: `tab-${key}`, 'aria-controls': 'tab-panel',
        'aria-selected': String(key === this.tab), tabindex: key === this.tab ? '0' : '-1',
        onclick: () => { this.tab = key; this.userPickedText = key === 'text'; this.render(); },
      }, label, count ? ` (${count})` : '');
      tablist.append(b);
    }
    tablist.addEventListener('keydown', (e) => this.tabKeys(e));
    const panel = el('div', { id: 'tab-panel', class: 'panel', role: 'tabpanel',
      'aria-labelledby': `tab-${this.tab}` });
    this.root.append(this.headerBlock(), this.actions(), tablist, panel);
    this.renderTab(panel).catch((e) => {
      panel.append(el('p', { class: 'error' }, `Could not load: ${e.message}`));
    });
  }

  tabKeys(e) {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const i = TABS.findIndex(([k]) => k === this.tab);
    const n = (i + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length;
    this.tab = TABS[n][0];
    this.render();
    document.getElementById(`tab-${this.tab}`).focus();
    e.preventDefault();
  }

  headerBlock() {
    const m = this.msg;
    const line = (label, value) => value ? el('div', { class: 'hline' },
      el('span', { class: 'hlabel' }, label), el('span', { class: 'hvalue' }, value)) : null;
    const list = (a) => (a || []).map(addressText).join(', ');
    return el('div', { class: 'msg-head' },
      el('button', { type: 'button', class: 'back', onclick: () => this.onBack() }, '← Back'),
      el('h2', { id: 'msg-subject' }, m.Subject || '(no subject)'),
      line('From', addressText(m.From)),
      line('To', list(m.To)),
      line('Cc', list(m.Cc)),
      line('Bcc', list(m.Bcc)),
      line('Reply-To', list(m.ReplyTo)),
      line('Date', fullTime(m.Date)),
      line('Inbox', m.Inbox),
      line('Size', formatSize(m.Size)),
      m.Tags.length ? el('div', { class: 'hline' }, el('span', { class: 'hlabel' }, 'Tags'),
        el('span', { class: 'tags' }, m.Tags.map((t) => el('span', { class: 'tag' }, t)))) : null);
  }

  actions() {
    const m = this.msg;
    const read = this.summary ? this.summary.Read : true;
    const bar = el('div', { class: 'actions', role: 'toolbar', 'aria-label': 'Message actions' },
      el('button', { type: 'button', id: 'toggle-read', onclick: () => this.setRead(!read) },
        read ? 'Mark unread' : 'Mark read'),
      el('button', { type: 'button', id: 'edit-tags', onclick: () => this.editTags() }, 'Tags…'),
      el('button', { type: 'button', id: 'download-eml', onclick: () => this.downloadEml() },
        'Download .eml'),
      this.relayEnabled() ? el('button', { type: 'button', id: 'release',
        onclick: () => this.release() }, 'Release…') : null,
      el('button', { type: 'button', id: 'delete-msg', class: 'danger',
        onclick: () => this.remove() }, 'Delete'));
    return el('div', {}, bar, el('form', { id: 'tag-form', class: 'inline-form', hidden: true,
      onsubmit: (e) => { e.preventDefault(); this.saveTags(); } },
    el('label', { for: 'tag-input' }, 'Tags (comma-separated)'),
    el('input', { id: 'tag-input', type: 'text', value: m.Tags.join(', ') }),
    el('button', { type: 'submit' }, 'Save tags')));
  }

  async setRead(read) {
    await request('/api/v1/messages', { method: 'PUT', body: { IDs: [this.msg.ID], Read: read } });
    if (this.summary) this.summary.Read = read;
    this.onChanged(this.msg.ID, { Read: read });
    this.render();
  }

  editTags() {
    const f = this.root.querySelector('#tag-form');
    f.hidden = !f.hidden;
    if (!f.hidden) f.querySelector('input').focus();
  }

  async saveTags() {
    const tags = this.root.querySelector('#tag-input').value.split(',')
      .map((t) => t.trim()).filter(Boolean);
    await request('/api/v1/tags', { method: 'PUT', body: { IDs: [this.msg.ID], Tags: tags } });
    this.msg.Tags = tags;
    this.onChanged(this.msg.ID, { Tags: tags });
    this.render();
  }

  async downloadEml() {
    const res = await request(`/api/v1/message/${this.msg.ID}/raw?dl=1`);
    saveBlob(await res.blob(), `${this.msg.ID}.eml`);
  }

  // Sends the message on to relay-host. The prompt starts with the
  // envelope recipients; the server's refusal (a recipient outside
  // relay-allowed-recipients, the upstream's reply) is shown as it says it.
  async release() {
    const to = window.prompt('Release to (comma-separated addresses):',
      (this.msg.RcptTo || []).join(', '));
    if (!to) return;
    const list = to.split(',').map((s) => s.trim()).filter(Boolean);
    try {
      await request(`/api/v1/message/${this.msg.ID}/release`, { method: 'POST',
        body: { To: list } });
      toast(`Released to ${list.join(', ')}`);
    } catch (e) {
      toast(`Release failed: ${e.text ?? e.message}`);
    }
  }

  async remove() {
    const id = this.msg.ID;
    await request('/api/v1/messages', { method: 'DELETE', body: { IDs: [id] } });
    this.onDeleted(id);
  }

  async renderTab(panel) {
    const m = this.msg;
    switch (this.tab) {
    case 'html': return this.renderHtml(panel);
    case 'source': return panel.append(m.HTML ? el('pre', { class: 'code' }, m.HTML)
      : el('p', {}, 'This message has no HTML part.'));
    case 'text': return panel.append(m.Text ? el('pre', { class: 'text' }, m.Text)
      : el('p', {}, 'This message has no text part.'));
    case 'raw': return this.renderRaw(panel);
    case 'headers': return this.renderHeaders(panel);
    case 'mime': return this.renderMime(panel);
    case 'attachments': return this.renderAttachments(panel);
    case 'envelope': return this.renderEnvelope(panel);
    default: return null;
    }
  }

  async inlineImages(html) {
    // cid: references become data: URLs, fetched with our credentials:
    // the sandboxed frame has none and fetches nothing itself.
    for (const p of this.msg.Inline) {
      if (!p.ContentID || p.Size > INLINE_MAX || !html.includes(`cid:${p.ContentID}`)) continue;
      const res = await request(`/api/v1/message/${this.msg.ID}/part/${p.PartID}`);
      const blob = new Blob([await res.blob()], { type: p.ContentType });
      const data = await new Promise((resolve, reject) => {
        const fr = new FileReader();
        fr.onload = () => resolve(fr.result);
        fr.onerror = () => reject(fr.error);
        fr.readAsDataURL(blob);
      });
      html = html.split(`cid:${p.ContentID}`).join(data);
    }
    return html;
  }

  async renderHtml(panel) {
    const m = this.msg;
    if (!m.HTML) {
      panel.append(el('p', {}, 'This message has no HTML part.'));
      return;
    }
    const allowed = this.allowRemote.has(m.ID);
    const bar = el('div', { class: 'html-bar' });
    const widths = el('div', { class: 'widths', role: 'group', 'aria-label': 'Preview width' });
    for (const [key, label] of WIDTHS)
      widths.append(el('button', { type: 'button', 'aria-pressed': String(this.width === key),
        id: `width-${key}`, onclick: () => { this.width = key; this.render(); } }, label));
    bar.append(widths);
    if (REMOTE.test(m.HTML)) {
      bar.append(allowed ? el('span', { class: 'note' }, 'Remote content allowed for this message.')
        : el('span', { class: 'note' }, 'Remote images and fonts are blocked. ',
          el('button', { type: 'button', id: 'allow-remote',
            onclick: () => { this.allowRemote.add(m.ID); this.render(); } }, 'Load remote content')));
    }
    const frame = el('iframe', {
      id: 'html-frame', title: 'Message HTML', class: `frame ${this.width}`,
      sandbox: 'allow-popups allow-popups-to-escape-sandbox', referrerpolicy: 'no-referrer',
      style: `width: ${WIDTHS.find(([k]) => k === this.width)[2]}`,
    });
    panel.append(bar, el('div', { class: 'frame-wrap' }, frame));
    frame.srcdoc = frameDocument(await this.inlineImages(m.HTML), allowed);
  }

  async renderRaw(panel) {
    const m = this.msg;
    const dl = el('button', { type: 'button', onclick: () => this.downloadEml() }, 'Download .eml');
    if (m.Size > RAW_SHOW_MAX) {
      panel.append(el('p', {}, `The raw message is ${formatSize(m.Size)}. `, dl));
      return;
    }
    const text = await (await request(`/api/v1/message/${m.ID}/raw`)).text();
    panel.append(el('div', { class: 'panel-bar' }, dl, copyButton(text, 'Copy raw source')),
      el('pre', { class: 'code', id: 'raw-source' }, text));
  }

  async renderHeaders(panel) {
    const h = await json(`/api/v1/message/${this.msg.ID}/headers`);
    const rows = [];
    for (const [name, values] of Object.entries(h))
      for (const v of values) rows.push(el('tr', {}, el('th', { scope: 'row' }, name), el('td', {}, v)));
    panel.append(el('table', { class: 'headers', id: 'headers-table' },
      el('caption', { class: 'sr' }, 'Message headers'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Header'), el('th', { scope: 'col' }, 'Value'))),
      el('tbody', {}, rows)));
  }

  async renderMime(panel) {
    const tree = await json(`/api/v1/message/${this.msg.ID}/structure`);
    const node = (p) => el('li', {},
      el('span', { class: 'mime-type' }, p.ContentType),
      p.PartID ? el('span', { class: 'mime-id' }, ` part ${p.PartID}`) : null,
      el('span', { class: 'mime-meta' }, ` · ${formatSize(p.Size)}`,
        p.Encoding ? ` · ${p.Encoding}` : '', p.Charset ? ` · ${p.Charset}` : '',
        p.Disposition ? ` · ${p.Disposition}` : '', p.FileName ? ` · ${p.FileName}` : '',
        p.ContentID ? ` · cid ${p.ContentID}` : ''),
      p.Parts && p.Parts.length ? el('ul', {}, p.Parts.map(node)) : null);
    panel.append(el('ul', { class: 'mime-tree', id: 'mime-tree' }, node(tree)));
  }

  async renderAttachments(panel) {
    const parts = [...this.msg.Attachments, ...this.msg.Inline];
    if (!parts.length) {
      panel.append(el('p', {}, 'No attachments.'));
      return;
    }
    const list = el('ul', { class: 'attachments', id: 'attachment-list' });
    for (const p of parts) {
      const name = p.FileName || `part-${p.PartID}`;
      const li = el('li', {},
        el('span', { class: 'att-name' }, name),
        el('span', { class: 'att-meta' }, ` ${p.ContentType} · ${formatSize(p.Size)}`),
        el('button', { type: 'button', class: 'download', 'data-part': p.PartID,
          onclick: () => this.downloadPart(p, name) }, `Download ${name}`));
      list.append(li);
      if (p.ContentType.startsWith('image/') && p.Size <= INLINE_MAX) {
        request(`/api/v1/message/${this.msg.ID}/part/${p.PartID}`).then((r) => r.blob())
          .then((b) => {
            const url = URL.createObjectURL(b);
            this.objectUrls.push(url);
            li.append(el('img', { class: 'preview', src: url, alt: `Preview of ${name}` }));
          }).catch(() => {});
      }
    }
    panel.append(list);
  }

  async downloadPart(p, name) {
    const res = await request(`/api/v1/message/${this.msg.ID}/part/${p.PartID}`);
    saveBlob(await res.blob(), name);
  }

  renderEnvelope(panel) {
    const m = this.msg;
    const s = this.summary;
    const visible = new Set([...(m.To || []), ...(m.Cc || [])]
      .map((a) => a.Address.toLowerCase()));
    const rcpts = (m.RcptTo || []).map((r) => {
      const bcc = !visible.has(r.toLowerCase());
      return el('li', { class: bcc ? 'rcpt bcc' : 'rcpt' }, r,
        bcc ? el('span', { class: 'badge', title: 'Not in To or Cc: a Bcc recipient' }, 'Bcc') : null);
    });
    const row = (k, v) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, v));
    panel.append(el('table', { class: 'envelope', id: 'envelope' },
      el('caption', { class: 'sr' }, 'SMTP envelope'),
      el('tbody', {},
        row('MAIL FROM', m.MailFrom ? `<${m.MailFrom}>` : '<> (null sender)'),
        row('RCPT TO', el('ul', { class: 'rcpts' }, rcpts)),
        row('Arrived', s ? fullTime(s.Created) : ''),
        row('Client address', m.ClientAddress || '—'),
        row('Authenticated user', m.Username || '— (no AUTH)'),
        row('Inbox', m.Inbox),
        row('Message-ID', m.MessageID || '—'))));
  }
}

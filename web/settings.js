// The connection settings of an inbox, the way a hosted mail trap shows
// them: hosts and ports of the listeners this server runs (from
// GET /api/v1/webui's Listeners), the inbox's credentials, and snippets
// to paste into common frameworks. Also creating and deleting inboxes.
import { json, request } from './api.js';
import { el, clear, copyButton, confirmDialog } from './util.js';

// "127.0.0.1:1025" / "[::1]:1025" -> [host, port]; a wildcard host is
// the host the page was loaded from.
export function splitAddress(addr) {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(addr || '');
  if (!m) return null;
  let host = m[1];
  if (host === '0.0.0.0' || host === '::' || host === '') host = location.hostname;
  return [host, Number(m[2])];
}

export function snippets(host, port, user, pass, tls) {
  const enc = encodeURIComponent;
  return [
    ['SMTP URL', `smtp://${enc(user)}:${enc(pass)}@${host}:${port}`],
    ['Rails (ActionMailer)', `config.action_mailer.delivery_method = :smtp
config.action_mailer.smtp_settings = {
  address: "${host}", port: ${port},
  user_name: "${user}", password: "${pass}",
  authentication: :plain, enable_starttls_auto: ${tls}
}`],
    ['Django (settings.py)', `EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "${host}"
EMAIL_PORT = ${port}
EMAIL_HOST_USER = "${user}"
EMAIL_HOST_PASSWORD = "${pass}"
EMAIL_USE_TLS = False`],
    ['Laravel (.env)', `MAIL_MAILER=smtp
MAIL_HOST=${host}
MAIL_PORT=${port}
MAIL_USERNAME=${user}
MAIL_PASSWORD=${pass}
MAIL_ENCRYPTION=null`],
    ['Node (nodemailer)', `const transport = nodemailer.createTransport({
  host: "${host}", port: ${port}, secure: false,
  auth: { user: "${user}", pass: "${pass}" },
});`],
    ['Spring (application.properties)', `spring.mail.host=${host}
spring.mail.port=${port}
spring.mail.username=${user}
spring.mail.password=${pass}
spring.mail.properties.mail.smtp.auth=true`],
  ];
}

function field(label, value, id) {
  return el('div', { class: 'field' },
    el('span', { class: 'flabel', id: `${id}-label` }, label),
    el('code', { class: 'fvalue', id, 'aria-labelledby': `${id}-label` }, String(value)),
    copyButton(String(value), label));
}

export function renderSettings(root, { webui, inbox, inboxes, onChanged, notice = '' }) {
  clear(root);
  const L = webui.Listeners || {};
  const name = inbox || (inboxes.find((i) => i.Name === 'dev') || inboxes[0] || {}).Name || 'dev';
  const info = inboxes.find((i) => i.Name === name) || { Name: name };
  const pass = info.Password;
  const rows = [];
  for (const [proto, label] of [['smtp', 'SMTP'], ['smtps', 'SMTPS (TLS)'], ['imap', 'IMAP'],
    ['imaps', 'IMAPS (TLS)'], ['pop3', 'POP3'], ['pop3s', 'POP3S (TLS)']]) {
    const hp = splitAddress(L[proto]);
    if (hp) rows.push(el('div', { class: 'proto' }, el('h4', {}, label),
      field('Host', hp[0], `set-${proto}-host`), field('Port', hp[1], `set-${proto}-port`)));
  }
  const smtp = splitAddress(L.smtp) || splitAddress(L.smtps) || [location.hostname, 1025];
  const shownPass = pass ?? 'PASSWORD';
  root.append(
    el('h3', {}, `Inbox “${name}”`),
    el('div', { class: 'creds' }, field('Username', name, 'set-user'),
      pass !== undefined ? field('Password', pass, 'set-pass')
        : el('p', { class: 'note', id: 'set-pass-hidden' },
          'The password is shown to the admin login and to the inbox itself (Sign in).')),
    el('div', { class: 'protos' }, rows),
    el('h3', {}, 'Snippets'),
    ...snippets(smtp[0], smtp[1], name, shownPass, !!L.smtps).map(([title, text]) =>
      el('details', { class: 'snippet' }, el('summary', {}, title),
        el('pre', { class: 'code' }, text), copyButton(text, title))),
    manageInboxes(inboxes, webui, onChanged, notice));
}

// onChanged(notice): the inboxes changed; the panel is drawn again with
// the notice in its status line.
function manageInboxes(inboxes, webui, onChanged, notice) {
  if (webui.User && webui.User.Kind === 'inbox') return null;
  const result = el('div', { id: 'create-result', role: 'status' }, notice);
  const form = el('form', { id: 'create-inbox', class: 'inline-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const n = form.querySelector('#new-inbox-name').value.trim();
      const p = form.querySelector('#new-inbox-pass').value;
      try {
        const made = await json('/api/v1/inboxes', { method: 'POST', scopedPath: false,
          body: p ? { Name: n, Password: p } : { Name: n } });
        onChanged(`Created “${made.Name}”, password ${made.Password}`);
      } catch (err) {
        clear(result).append(`Could not create: ${err.message}`);
      }
    } },
  el('label', { for: 'new-inbox-name' }, 'Name'),
  el('input', { id: 'new-inbox-name', required: true, maxlength: 63, autocomplete: 'off' }),
  el('label', { for: 'new-inbox-pass' }, 'Password (empty: generated)'),
  el('input', { id: 'new-inbox-pass', type: 'text', autocomplete: 'off' }),
  el('button', { type: 'submit' }, 'Create inbox'));
  const del = el('ul', { class: 'inbox-list' }, inboxes.map((i) => el('li', {},
    el('span', {}, `${i.Name} (${i.Messages} messages)`),
    el('button', { type: 'button', class: 'danger', 'data-inbox': i.Name,
      onclick: async () => {
        if (!await confirmDialog(`Delete inbox “${i.Name}” and all its mail?`)) return;
        await request(`/api/v1/inboxes/${encodeURIComponent(i.Name)}`,
          { method: 'DELETE', scopedPath: false });
        onChanged(`Inbox “${i.Name}” deleted`);
      } }, `Delete ${i.Name}`))));
  return el('div', { class: 'manage' }, el('h3', {}, 'Inboxes'), form, result, del);
}

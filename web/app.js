// The page: wires the inbox picker, the list, the message view, search,
// live events, the keyboard, the title's unread count and notifications.
import * as api from './api.js';
import { MessageList } from './list.js';
import { MessageView } from './view.js';
import { renderSettings } from './settings.js';
import { confirmDialog, toast } from './util.js';

const $ = (id) => document.getElementById(id);
const state = { webui: {}, inboxes: [], unread: 0, notify: false, stream: null };

function setTitle() {
  document.title = state.unread > 0 ? `(${state.unread}) mailsnare` : 'mailsnare';
}

function setCounts(total, unread) {
  state.unread = unread;
  $('count').textContent = `${total} message${total === 1 ? '' : 's'}, ${unread} unread`;
  setTitle();
}

const list = new MessageList($('list'), $('more'), {
  onOpen: (id) => openMessage(id),
  onCounts: (page) => setCounts(page.total, page.unread),
});

const view = new MessageView($('view'), {
  relayEnabled: () => !!(state.webui.MessageRelay && state.webui.MessageRelay.Enabled),
  onDeleted: (id) => deleted(id),
  onChanged: (id, changes) => list.update(id, changes),
  onBack: () => closeMessage(),
});

// After a delete from the page: the next message opens, as in a mail
// client, if this one was open.
function deleted(id) {
  const wasOpen = view.msg && view.msg.ID === id;
  list.remove(id);
  const next = list.currentId();
  if (!wasOpen) return;
  if (next) openMessage(next); else closeMessage();
}

async function openMessage(id) {
  document.body.classList.add('reading');
  $('empty-view').hidden = true;
  try {
    const summary = list.msg(id);
    const wasUnread = summary && !summary.Read;
    await view.show(id, summary);
    if (wasUnread) {
      list.update(id, { Read: true });
      setCounts(list.total, Math.max(0, state.unread - 1));
    }
  } catch (e) {
    toast(`Could not open the message: ${e.message}`);
  }
}

function closeMessage(focusList = true) {
  document.body.classList.remove('reading');
  view.close();
  $('empty-view').hidden = false;
  list.highlight(focusList);
}

// --- live events ---------------------------------------------------------

function onEvent(type, data) {
  if (type === 'new') {
    if (list.query) scheduleSearch();
    else list.prepend(data);
    setCounts(list.total, state.unread + (data.Read ? 0 : 1));
    notifyNew(data);
  } else if (type === 'update') {
    list.update(data.ID, { Read: data.Read, Tags: data.Tags });
  } else if (type === 'delete') {
    list.remove(data.ID);
    if (view.msg && view.msg.ID === data.ID) closeMessage();
  } else if (type === 'stats') {
    setCounts(list.query ? list.total : data.Total, data.Unread);
  } else if (type === 'truncate' || type === 'prune') {
    list.reload();
  }
}

// The notification rule: one per new message of the inbox scope shown,
// only when the user turned them on (the Notifications button, which asks
// the browser's permission) and only while the tab is hidden: a visible
// tab shows the row itself. Clicking one brings the tab up on the message.
function notifyNew(m) {
  if (!state.notify || !document.hidden || !('Notification' in window) ||
      Notification.permission !== 'granted') return;
  const from = (m.From && (m.From.Name || m.From.Address)) || m.MailFrom || '';
  const n = new Notification(m.Subject || '(no subject)', { body: from, tag: `mailsnare-${m.ID}` });
  n.onclick = () => {
    window.focus();
    openMessage(m.ID);
    n.close();
  };
}

let searchTimer = 0;
function scheduleSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => list.reload(), 300);
}

function listen() {
  if (state.stream) state.stream.abort();
  state.stream = new AbortController();
  api.events('/api/v1/events', onEvent, state.stream.signal);
}

// --- inboxes and settings -------------------------------------------------

async function loadInboxes() {
  try {
    state.inboxes = (await api.json('/api/v1/inboxes', { scopedPath: false })).inboxes;
  } catch {
    state.inboxes = [];
  }
  const sel = $('inbox');
  const keep = api.getScope();
  sel.replaceChildren();
  if (!state.webui.User || state.webui.User.Kind !== 'inbox')
    sel.append(new Option('All inboxes', ''));
  for (const i of state.inboxes) sel.append(new Option(`${i.Name} (${i.Messages})`, i.Name));
  sel.value = keep;
  if (sel.selectedIndex < 0 || sel.value !== keep) {
    sel.selectedIndex = 0;
    api.setScope(sel.value);
  }
}

function showSettings(notice = '') {
  renderSettings($('settings-body'), {
    webui: state.webui, inbox: api.getScope(), inboxes: state.inboxes, notice,
    onChanged: async (text) => {
      await loadInboxes();
      if ($('settings').open) showSettings(text);
      list.reload();
    },
  });
}

async function switchInbox(name) {
  api.setScope(name);
  closeMessage();
  listen();
  await list.reload();
}

// --- login ------------------------------------------------------------------

function loginPrompt() {
  const d = $('login');
  if (!d.open) d.showModal();
  $('login-user').focus();
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      resolve(d.returnValue === 'ok' ? [$('login-user').value, $('login-pass').value] : null);
    }, { once: true });
  });
}

async function start() {
  api.setLoginPrompt(loginPrompt);
  try {
    state.webui = await api.json('/api/v1/webui', { scopedPath: false });
  } catch (e) {
    toast(`The server did not answer: ${e.message}`);
  }
  $('login-btn').textContent = api.signedIn() ? 'Sign out' : 'Sign in';
  // An inbox login is scoped to its inbox by the picker; anyone else
  // starts on all inboxes, so the first page need not wait for the list
  // of inboxes.
  if (state.webui.User && state.webui.User.Kind === 'inbox') await loadInboxes();
  else loadInboxes();
  listen();
  await list.reload();
}

// --- controls and keys ------------------------------------------------------

$('inbox').addEventListener('change', (e) => switchInbox(e.target.value));
$('settings-btn').addEventListener('click', () => {
  showSettings();
  $('settings').showModal();
});
$('search-form').addEventListener('submit', (e) => {
  e.preventDefault();
  closeMessage(false);
  list.reload($('search').value.trim());
});
$('search').addEventListener('search', () => {        // the clear (x) button
  if ($('search').value === '' && list.query) list.reload('');
});
$('login-btn').addEventListener('click', async () => {
  if (api.signedIn()) {
    api.setCredentials('', '');
    location.reload();
    return;
  }
  const got = await loginPrompt();
  if (got) {
    api.setCredentials(got[0], got[1]);
    location.reload();
  }
});
$('notify-btn').addEventListener('click', async () => {
  if (!state.notify && 'Notification' in window)
    state.notify = (await Notification.requestPermission()) === 'granted';
  else
    state.notify = false;
  $('notify-btn').setAttribute('aria-pressed', String(state.notify));
});
$('mark-all-read').addEventListener('click', async () => {
  await api.request('/api/v1/messages', { method: 'PUT', body: { Read: true } });
  list.reload();
});
// Delete all: with a search on, only its matches (DELETE /api/v1/search,
// the same query and time zone as the list); without, the inbox scope.
$('delete-all').addEventListener('click', async () => {
  const scope = api.getScope();
  const where = scope ? ` of inbox “${scope}”` : ' of every inbox';
  const q = list.query;
  const n = list.total;
  const question = q
    ? `Delete the ${n} message${n === 1 ? '' : 's'} matching “${q}”${where}?`
    : `Delete every message${where}?`;
  if (!await confirmDialog(question, q ? 'Delete matches' : 'Delete all')) return;
  try {
    if (q) await api.request(`/api/v1/search?${list.searchParams()}`, { method: 'DELETE' });
    else await api.request('/api/v1/messages', { method: 'DELETE' });
  } catch (e) {
    toast(`Could not delete: ${e.text ?? e.message}`);
  }
  closeMessage();
  list.reload();
});

document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey || document.querySelector('dialog[open]')) return;
  if (t.closest && t.closest('input, textarea, select, [role=tab]')) {
    if (e.key === 'Escape' && t.id === 'search') t.blur();
    return;
  }
  switch (e.key) {
  case 'j': case 'ArrowDown': list.move(1); break;
  case 'k': case 'ArrowUp': list.move(-1); break;
  case 'Enter':
    if (t.closest && t.closest('button, a, iframe')) return;
    list.open();
    break;
  case 'Delete': {
    const id = view.msg ? view.msg.ID : list.currentId();
    if (id) api.request('/api/v1/messages', { method: 'DELETE', body: { IDs: [id] } })
      .then(() => deleted(id), (err) => toast(`Could not delete: ${err.message}`));
    break;
  }
  case '/': $('search').focus(); $('search').select(); break;
  case 'Escape': if (view.msg) closeMessage(); break;
  default: return;
  }
  e.preventDefault();
});

start();

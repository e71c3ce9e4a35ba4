// The message list: newest first, a page of PAGE summaries at a time
// (the next page when the end of the list scrolls into view), never the
// whole store. Rows are kept by ID so live events update them in place.
import { json } from './api.js';
import { el, clear, formatSize, relativeTime, addressShort, fullTime } from './util.js';

const PAGE = 50;

// The attachment mark: an inline SVG paper clip (no icon font needed).
function clip(n) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'clip');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${n} attachment${n === 1 ? '' : 's'}`);
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('d', 'M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5');
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', '2');
  svg.append(path);
  return svg;
}

export class MessageList {
  constructor(root, sentinel, { onOpen, onCounts }) {
    this.root = root;
    this.sentinel = sentinel;
    this.onOpen = onOpen;
    this.onCounts = onCounts;
    this.rows = new Map();       // ID -> { msg, li }
    this.order = [];             // IDs as shown
    this.current = -1;
    this.query = '';
    this.total = 0;
    this.offset = 0;             // rows of the store's order already loaded
    this.generation = 0;         // 0 until the first reload; a reload makes older replies stale
    this.loading = false;
    new IntersectionObserver((e) => {
      if (e.some((x) => x.isIntersecting)) this.more();
    }, { root: null, rootMargin: '400px' }).observe(sentinel);
    // The observer fires on changes only: a scroll that ends with the
    // sentinel still in view after a page came asks again here.
    sentinel.parentElement.addEventListener('scroll', () => {
      if (sentinel.getBoundingClientRect().top < window.innerHeight + 400) this.more();
    }, { passive: true });
    root.addEventListener('click', (e) => {
      const li = e.target.closest('li[data-id]');
      if (li) this.open(this.order.indexOf(li.dataset.id));
    });
    setInterval(() => this.refreshTimes(), 30000);
  }

  async reload(query = this.query) {
    this.query = query;
    this.generation++;
    this.rows.clear();
    this.order = [];
    this.current = -1;
    this.offset = 0;
    this.total = 0;
    this.loading = false;
    clear(this.root);
    await this.more();
  }

  async more() {
    if (this.generation === 0 || this.loading || (this.offset > 0 && this.offset >= this.total)) return;
    this.loading = true;
    const gen = this.generation;
    const params = new URLSearchParams({ start: this.offset, limit: PAGE });
    let path = '/api/v1/messages';
    if (this.query) {
      for (const [k, v] of this.searchParams()) params.set(k, v);
      path = '/api/v1/search';
    }
    try {
      const page = await json(`${path}?${params}`);
      if (gen !== this.generation) return;
      this.total = page.messages_count;
      this.offset += page.messages.length;
      for (const m of page.messages) this.append(m);
      // For bench/web.sh: when the list first showed rows.
      if (this.offset === page.messages.length) performance.mark('mailsnare:first-page');
      this.onCounts(page);
      this.sentinel.textContent = this.offset < this.total
        ? 'Loading more…' : (this.total ? '' : (this.query ? 'No message matches.' : 'No messages yet.'));
    } finally {
      if (gen === this.generation) this.loading = false;
    }
    // A tall window may show the sentinel still: fill it.
    if (gen === this.generation && this.offset < this.total) {
      const r = this.sentinel.getBoundingClientRect();
      if (r.top < window.innerHeight + 400) this.more();
    }
  }

  // The search as the API takes it: the query, dates in our time zone.
  searchParams() {
    return new URLSearchParams({ query: this.query,
      tz: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' });
  }

  row(m) {
    const to = (m.To || []).map(addressShort).join(', ');
    const li = el('li', {
      role: 'option', tabindex: '-1', 'aria-selected': 'false',
      class: m.Read ? 'msg' : 'msg unread', dataset: { id: m.ID },
    },
    el('span', { class: 'from' }, addressShort(m.From) || m.MailFrom || '(no sender)'),
    el('time', { class: 'when', datetime: m.Created, title: fullTime(m.Created) },
      relativeTime(m.Created)),
    el('span', { class: 'subject' }, m.Subject || '(no subject)'),
    el('span', { class: 'meta' },
      m.Attachments ? clip(m.Attachments) : null,
      el('span', { class: 'size' }, formatSize(m.Size))),
    el('span', { class: 'to' }, to ? `To: ${to}` : ''),
    el('span', { class: 'snippet' }, m.Snippet || ''),
    (m.Tags || []).length ? el('span', { class: 'tags' },
      m.Tags.map((t) => el('span', { class: 'tag' }, t))) : null);
    if (!m.Read) li.setAttribute('aria-label', `Unread: ${m.Subject || '(no subject)'}`);
    return li;
  }

  // Adds a row at the end (a page) or on top; false if it is shown already.
  add(m, top) {
    if (this.rows.has(m.ID)) return false;
    const li = this.row(m);
    this.rows.set(m.ID, { msg: m, li });
    if (top) {
      this.order.unshift(m.ID);
      this.root.prepend(li);
    } else {
      this.order.push(m.ID);
      this.root.append(li);
    }
    return true;
  }

  append(m) {
    if (this.add(m, false) && this.order.length === 1) this.highlight();
  }

  // A message that just arrived (SSE "new"): on top, when no search is
  // on (a search is re-run by the caller instead).
  prepend(m) {
    if (!this.add(m, true)) return;
    this.offset++;
    this.total++;
    if (this.current >= 0) this.current++;
    else this.highlight();
    this.sentinel.textContent = '';
  }

  update(id, changes) {
    const r = this.rows.get(id);
    if (!r) return;
    Object.assign(r.msg, changes);
    const li = this.row(r.msg);
    if (r.li.classList.contains('current')) {
      li.classList.add('current');
      li.setAttribute('aria-selected', 'true');
    }
    li.setAttribute('tabindex', r.li.getAttribute('tabindex'));
    r.li.replaceWith(li);
    r.li = li;
  }

  remove(id) {
    const r = this.rows.get(id);
    if (!r) return false;
    const i = this.order.indexOf(id);
    r.li.remove();
    this.rows.delete(id);
    this.order.splice(i, 1);
    this.offset--;
    this.total--;
    if (i < this.current) this.current--;
    else if (i === this.current) this.current = Math.min(i, this.order.length - 1);
    this.highlight();
    return true;
  }

  msg(id) { return this.rows.get(id)?.msg; }
  currentId() { return this.order[this.current]; }

  // One row is in the tab order at a time (a roving tabindex): the
  // current one, or the first.
  highlight(focus = false) {
    for (const li of this.root.querySelectorAll('li.current, li[tabindex="0"]')) {
      li.classList.remove('current');
      li.setAttribute('aria-selected', 'false');
      li.setAttribute('tabindex', '-1');
    }
    const id = this.order[Math.max(this.current, 0)];
    const li = id && this.rows.get(id).li;
    if (!li) return;
    li.setAttribute('tabindex', '0');
    if (this.current < 0) return;
    li.classList.add('current');
    li.setAttribute('aria-selected', 'true');
    li.scrollIntoView({ block: 'nearest' });
    if (focus) li.focus({ preventScroll: true });
  }

  move(delta) {
    if (!this.order.length) return;
    this.current = Math.max(0, Math.min(this.order.length - 1, this.current + delta));
    this.highlight(true);
    if (this.current >= this.order.length - 5) this.more();
  }

  open(i = this.current) {
    if (i < 0 || i >= this.order.length) return;
    this.current = i;
    this.highlight(true);
    this.onOpen(this.order[i]);
  }

  refreshTimes() {
    const now = Date.now();
    for (const t of this.root.querySelectorAll('time.when'))
      t.textContent = relativeTime(t.getAttribute('datetime'), now);
  }
}


'use strict';
// The ferrule dashboard: polls GET /pools, each pool's backends (GET /backends for `default`,
// GET /pools/{name}/backends for the others) and GET /stats every second and updates the page in
// place (one row per backend, keyed by its id (unique across pools), grouped by pool; only the
// text and attributes that changed are written). Rates are the differences between two polls. Actions go through the same REST API.
// Text from the API is only ever set with textContent.
(() => {
  const POLL_MS = 1000;
  const POINTS = 180; // samples kept for the charts: 3 minutes at one a second
  const LATENCY_WINDOW_MS = 60000;
  const CHECKS = 60; // health checks shown (the API keeps as many)
  const TOKEN_KEY = 'ferrule.adminToken';
  const CLASSES = ['2xx', '3xx', '4xx', '5xx'];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  // until that many samples are in, the charts stretch what they have over their width
  const SPARK_MIN_SPAN = 30;
  const CHART_MIN_SPAN = 60;

  const $ = (id) => document.getElementById(id);
  // where the backends of pool `name` are: /backends is the default pool's
  const backendsPath = (name) => (name === 'default'
    ? '/backends' : '/pools/' + encodeURIComponent(name) + '/backends');
  const nf = new Intl.NumberFormat('en-US');

  function h(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, attrs[k]);
    return e;
  }
  // writes only what changed: no layout work for a value that stayed
  function setText(e, text) {
    if (e.__text !== text) {
      e.__text = text;
      e.textContent = text;
    }
  }
  function setAttr(e, name, value) {
    if (e.getAttribute(name) !== value) e.setAttribute(name, value);
  }
  // The x of sample i of n in a chart POINTS wide: the newest at the right edge, spread over at
  // least `min` sample widths (so a chart that has just started is not a sliver at the right).
  function xScale(n, min) {
    const span = Math.max(n, min);
    const step = (POINTS - 1) / Math.max(1, span - 1);
    return (i) => (POINTS - 1) - (n - 1 - i) * step;
  }
  function spanText(n, min) {
    const s = Math.max(n, min);
    return s >= 120 ? Math.round(s / 60) + ' min ago' : s + ' s ago';
  }
  function push(list, v) {
    list.push(v);
    if (list.length > POINTS) list.shift();
  }

  // ------------------------------------------------------------------ formatting
  function fmtInt(n) { return nf.format(n); }
  function fmtRate(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (v === 0) return '0';
    if (v < 10) return v.toFixed(1);
    if (v < 10000) return String(Math.round(v));
    if (v < 1e6) return (v / 1e3).toFixed(1) + 'k';
    return (v / 1e6).toFixed(2) + 'M';
  }
  function fmtPct(p) {
    if (p === null) return '–';
    if (p === 0) return '0 %';
    if (p < 1) return p.toFixed(2) + ' %';
    if (p < 10) return p.toFixed(1) + ' %';
    return Math.round(p) + ' %';
  }
  function fmtBytes(v) {
    if (v === null || !isFinite(v)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
  }
  function fmtMs(q) {
    if (!q) return '–';
    const ms = q.ms;
    let text;
    if (ms < 10) text = ms.toFixed(1) + ' ms';
    else if (ms < 1000) text = Math.round(ms) + ' ms';
    else text = (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    return q.over ? '>' + text : text;
  }
  function fmtAgo(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }

  // A quantile estimated from histogram buckets (counts per bucket, not cumulative; the last
  // bucket is above every bound), interpolating linearly inside the bucket it falls in.
  function quantile(counts, bounds, q) {
    let total = 0;
    for (const c of counts) total += c;
    if (!total || !bounds.length) return null;
    const rank = q * total;
    let cum = 0;
    for (let i = 0; i < counts.length; i++) {
      const c = counts[i];
      if (c && cum + c >= rank) {
        if (i >= bounds.length) return { ms: bounds[bounds.length - 1], over: true };
        const lo = i === 0 ? 0 : bounds[i - 1];
        const f = Math.min(1, Math.max(0, (rank - cum) / c));
        return { ms: lo + (bounds[i] - lo) * f, over: false };
      }
      cum += c;
    }
    return { ms: bounds[bounds.length - 1], over: true };
  }

  // ------------------------------------------------------------------ the API
  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let token = null;
  try { token = sessionStorage.getItem(TOKEN_KEY); } catch (_) { token = null; }
  function saveToken(t) {
    token = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage off: kept in this page only */ }
    $('logout').hidden = !t;
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 8000);
    init.signal = ctl.signal;
    try {
      let r;
      try {
        r = await fetch(path, init);
      } catch (e) {
        throw new HttpError(0, e && e.name === 'AbortError'
          ? 'the admin API did not answer in time' : 'cannot reach the admin API');
      }
      let data = null;
      try { data = await r.json(); } catch (_) { data = null; }
      if (!r.ok) {
        const msg = data && typeof data.error === 'string' ? data.error : 'HTTP ' + r.status;
        throw new HttpError(r.status, msg);
      }
      return { status: r.status, data };
    } finally {
      clearTimeout(timer);
    }
  }

  // ------------------------------------------------------------------ the token
  let authOpen = false;
  function askToken(refused) {
    authOpen = true;
    $('auth').hidden = false;
    const msg = $('auth-msg');
    msg.textContent = refused
      ? 'That token was refused (401): it is not the admin_token. Try again.'
      : 'This ferrule has an admin_token. Enter it to see the dashboard.';
    msg.classList.toggle('bad', refused);
    const input = $('auth-token');
    input.value = '';
    input.focus();
    setConn('auth', 'token needed');
  }
  function onUnauthorized() {
    const refused = token !== null;
    saveToken(null);
    askToken(refused);
  }
  $('auth-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = $('auth-token').value.trim();
    if (!value) return;
    saveToken(value);
    $('auth').hidden = true;
    authOpen = false;
    setConn('wait', 'checking token…');
    pollSoon();
  });
  $('logout').addEventListener('click', () => {
    saveToken(null);
    askToken(false);
  });

  // ------------------------------------------------------------------ toasts
  function toast(kind, text, details) {
    const box = $('toasts');
    const t = h('div', 'toast ' + kind);
    t.setAttribute('role', kind === 'bad' ? 'alert' : 'status');
    t.appendChild(h('div', '', text));
    for (const d of (details || []).slice(0, 6)) t.appendChild(h('div', '', d));
    t.addEventListener('click', () => t.remove());
    box.appendChild(t);
    while (box.children.length > 5) box.firstChild.remove();
    setTimeout(() => t.remove(), kind === 'bad' ? 10000 : 6000);
  }
  function failed(e, what) {
    if (e.status === 401) {
      onUnauthorized();
      toast('bad', what + ': the admin token is needed (enter it, then try again)');
    } else {
      toast('bad', what + ': ' + e.message);
    }
  }

  // ------------------------------------------------------------------ charts
  // A sparkline: a line and the area under it, right-aligned (the newest sample at the right).
  class Spark {
    constructor(kind) {
      this.el = svg('svg', {
        class: 'spark ' + kind, viewBox: `0 0 ${POINTS - 1} 32`,
        preserveAspectRatio: 'none', 'aria-hidden': 'true',
      });
      this.area = svg('path', { class: 'area' });
      this.line = svg('polyline', { class: 'line', 'vector-effect': 'non-scaling-stroke' });
      this.el.append(this.area, this.line);
    }
    draw(values, floor) {
      const n = values.length;
      if (!n) return;
      let max = floor;
      for (const v of values) if (v > max) max = v;
      const x = xScale(n, SPARK_MIN_SPAN);
      let pts = '';
      for (let i = 0; i < n; i++) {
        pts += x(i).toFixed(1) + ',' + (31 - (values[i] / max) * 29).toFixed(1) + ' ';
      }
      this.line.setAttribute('points', pts);
      this.area.setAttribute('d', `M${x(0).toFixed(1)},32 L${pts}L${POINTS - 1},32 Z`);
      // all zero: a quiet baseline rather than a coloured one
      this.el.classList.toggle('zero', max === floor && values.every((v) => v === 0));
    }
  }

  // The health checks: one cell per check, the newest at the right.
  class Strip {
    constructor() {
      this.el = svg('svg', {
        class: 'strip', viewBox: `0 0 ${CHECKS * 4} 12`, preserveAspectRatio: 'none',
        role: 'img',
      });
      this.title = svg('title', {});
      this.el.appendChild(this.title);
      this.cells = [];
      for (let i = 0; i < CHECKS; i++) {
        const r = svg('rect', { x: i * 4, y: 0, width: 3, height: 12 });
        this.cells.push(r);
        this.el.appendChild(r);
      }
      this.key = '';
    }
    draw(history) {
      const list = history.slice(-CHECKS);
      const last = list.length ? list[list.length - 1].time_ms : 0;
      const key = list.length + ':' + last;
      if (key === this.key) return;
      this.key = key;
      const off = CHECKS - list.length;
      let ok = 0;
      for (let i = 0; i < CHECKS; i++) {
        const c = i < off ? '' : (list[i - off].ok ? 'ok' : 'fail');
        if (c === 'ok') ok++;
        if (this.cells[i].__c !== c) {
          this.cells[i].__c = c;
          this.cells[i].setAttribute('class', c);
        }
      }
      this.title.textContent = list.length
        ? `${ok} of the last ${list.length} health checks passed`
        : 'no active health checks yet';
    }
  }

  // The responses/s by class (stacked areas) and bytes/s (two lines) of the whole proxy.
  const global = { classes: CLASSES.map(() => []), out: [], in: [] };
  const classChart = $('chart-classes');
  const classAreas = CLASSES.map((c) => {
    const p = svg('path', { class: 's' + c[0] });
    classChart.appendChild(p);
    return p;
  });
  const bytesChart = $('chart-bytes');
  const outLine = svg('polyline', { class: 'l-out', 'vector-effect': 'non-scaling-stroke' });
  const inLine = svg('polyline', { class: 'l-in', 'vector-effect': 'non-scaling-stroke' });
  bytesChart.append(inLine, outLine);

  function drawClasses() {
    const n = global.classes[0].length;
    if (!n) return;
    const x = xScale(n, CHART_MIN_SPAN);
    const totals = new Array(n).fill(0);
    for (const series of global.classes) series.forEach((v, i) => { totals[i] += v; });
    const max = Math.max(1, ...totals);
    const y = (v) => (100 - (v / max) * 96).toFixed(1);
    const below = new Array(n).fill(0);
    global.classes.forEach((series, k) => {
      let top = '';
      let bottom = '';
      for (let i = 0; i < n; i++) top += `${x(i).toFixed(1)},${y(below[i] + series[i])} `;
      for (let i = n - 1; i >= 0; i--) bottom += `${x(i).toFixed(1)},${y(below[i])} `;
      for (let i = 0; i < n; i++) below[i] += series[i];
      classAreas[k].setAttribute('d', `M${top}L${bottom}Z`);
    });
    setText($('ymax-classes'), fmtRate(max) + '/s');
    setText($('x-classes'), spanText(n, CHART_MIN_SPAN));
  }
  function drawBytes() {
    const n = global.out.length;
    if (!n) return;
    const x = xScale(n, CHART_MIN_SPAN);
    const max = Math.max(1, ...global.out, ...global.in);
    const line = (series) => series
      .map((v, i) => `${x(i).toFixed(1)},${(100 - (v / max) * 96).toFixed(1)}`).join(' ');
    outLine.setAttribute('points', line(global.out));
    inLine.setAttribute('points', line(global.in));
    setText($('ymax-bytes'), fmtBytes(max) + '/s');
    setText($('x-bytes'), spanText(n, CHART_MIN_SPAN));
  }

  // ------------------------------------------------------------------ a backend's row
  const rowsEl = $('rows');
  const rows = new Map();

  class Row {
    constructor(b) {
      this.id = b.id;
      this.pool = typeof b.pool === 'string' ? b.pool : 'default';
      this.b = b;
      this.rps = [];
      this.errs = [];
      this.lat = [];
      this.prev = null;
      this.busy = false;
      this.armed = 0;
      const el = this.el = h('div', 'b');
      el.dataset.id = String(b.id);
      el.dataset.pool = this.pool;
      el.setAttribute('role', 'listitem');
      const cell = (cls, label) => {
        const c = h('div', 'c ' + cls);
        if (label) c.appendChild(h('span', 'lbl', label));
        el.appendChild(c);
        return c;
      };
      cell('c-id').appendChild(h('span', 'idv', '#' + b.id));

      const name = cell('c-name');
      this.url = h('span', 'url');
      this.addr = h('span', 'addr');
      name.append(this.url, this.addr);

      const state = cell('c-state', 'State');
      this.badge = h('span', 'badge');
      this.badge.dataset.field = 'state';
      this.removedTag = h('span', 'tag', 'removed');
      this.removedTag.hidden = true;
      // slow start under way, or what is left of an ejection
      this.rampTag = h('span', 'tag');
      this.rampTag.dataset.field = 'ramp';
      this.rampTag.hidden = true;
      state.append(this.badge, this.removedTag, this.rampTag);

      const weight = cell('c-weight', 'Weight');
      this.weight = h('span', 'num');
      this.weight.dataset.field = 'weight';
      this.wbtn = h('button', 'icon', '✎');
      this.wbtn.type = 'button';
      this.wbtn.dataset.action = 'weight';
      this.wbtn.title = 'change the weight';
      this.wbtn.setAttribute('aria-label', 'change the weight of backend #' + b.id);
      this.wform = h('form', 'wedit');
      this.wform.hidden = true;
      this.winput = h('input');
      this.winput.type = 'number';
      this.winput.min = '1';
      this.winput.max = '10000';
      this.winput.step = '1';
      this.winput.required = true;
      this.winput.setAttribute('aria-label', 'new weight');
      const wok = h('button', 'btn small primary', 'Set');
      wok.type = 'submit';
      const wcancel = h('button', 'btn small ghost', '✕');
      wcancel.type = 'button';
      wcancel.dataset.action = 'weight-cancel';
      wcancel.setAttribute('aria-label', 'cancel');
      this.wform.append(this.winput, wok, wcancel);
      weight.append(this.weight, this.wbtn, this.wform);

      const flight = cell('c-flight', 'In flight');
      this.flight = h('span', 'num');
      this.flight.dataset.field = 'in_flight';
      flight.appendChild(this.flight);

      const rps = cell('c-rps', 'Requests/s');
      const rline = h('div', 'vline');
      this.rpsv = h('span', 'num');
      this.rpsv.dataset.field = 'rps';
      this.total = h('span', 'sub');
      this.total.dataset.field = 'total';
      rline.append(this.rpsv, this.total);
      this.rspark = new Spark('rps');
      rps.append(rline, this.rspark.el);

      const err = cell('c-err', 'Errors');
      const eline = h('div', 'vline');
      this.errv = h('span', 'num');
      this.errv.dataset.field = 'errors';
      this.fails = h('span', 'sub');
      this.fails.dataset.field = 'failures';
      eline.append(this.errv, this.fails);
      this.espark = new Spark('err');
      err.append(eline, this.espark.el);

      const lat = cell('c-lat', 'Latency p50 · p90 · p99');
      const box = h('div', 'lat');
      this.ps = ['p50', 'p90', 'p99'].map((name) => {
        const wrap = h('span');
        const v = h('span', 'num', '–');
        v.dataset.field = name;
        wrap.append(v, h('small', '', name));
        box.appendChild(wrap);
        return v;
      });
      lat.append(box);
      this.latCell = lat;

      const health = cell('c-health', 'Health checks');
      this.strip = new Strip();
      this.hsub = h('span', 'sub');
      this.hsub.dataset.field = 'last_check';
      health.append(this.strip.el, this.hsub);

      const actions = cell('c-actions');
      const button = (action, text, cls, title) => {
        const btn = h('button', 'btn small ' + cls, text);
        btn.type = 'button';
        btn.dataset.action = action;
        btn.title = title;
        actions.appendChild(btn);
        return btn;
      };
      this.buttons = {
        drain: button('drain', 'Drain', 'warn', 'no new requests; those in flight finish'),
        disable: button('disable', 'Disable', '', 'switch it off'),
        enable: button('enable', 'Enable', '', 'switch it on and mark it healthy'),
        remove: button('remove', 'Remove', 'danger', 'take it out of the pool (click twice)'),
      };
      this.actKey = '';
    }

    // the fields that come straight from the API (also from an action's answer)
    show(b) {
      this.b = b;
      setText(this.url, b.url);
      setAttr(this.url, 'title', b.url);
      setText(this.addr, b.addr);
      setText(this.badge, b.state);
      if (this.badge.dataset.state !== b.state) this.badge.dataset.state = b.state;
      const removed = b.removed === true;
      this.removedTag.hidden = !removed;
      let ramp = '';
      if (b.slow_start) ramp = `slow start ${b.slow_start.share_percent}%`;
      else if (b.state === 'ejected' && b.ejected_remaining_ms != null) {
        ramp = `back in ${Math.ceil(b.ejected_remaining_ms / 1000)}s`;
      }
      setText(this.rampTag, ramp);
      this.rampTag.hidden = ramp === '';
      setAttr(this.rampTag, 'title', b.ejections ? `ejected ${b.ejections} times` : '');
      this.el.classList.toggle('is-removed', removed);
      setText(this.weight, String(b.weight));
      this.wbtn.hidden = removed || !this.wform.hidden;
      setText(this.flight, fmtInt(b.in_flight));
      setText(this.total, fmtInt(b.total_requests) + ' total');
      setText(this.fails, fmtInt(b.failures) + ' failed');
      this.showActions(b.state, removed);
    }

    // a poll's answer at `now`: the rates since the previous poll
    sample(b, now) {
      this.show(b);
      if (this.prev && now > this.prev.t) {
        const dt = (now - this.prev.t) / 1000;
        const dr = Math.max(0, b.total_requests - this.prev.total);
        const df = Math.max(0, b.failures - this.prev.failures);
        push(this.rps, dr / dt);
        push(this.errs, dr + df > 0 ? (100 * df) / Math.max(dr, df) : 0);
      }
      this.prev = { t: now, total: b.total_requests, failures: b.failures };
      const rps = this.rps.length ? this.rps[this.rps.length - 1] : null;
      const err = this.errs.length ? this.errs[this.errs.length - 1] : null;
      setText(this.rpsv, rps === null ? '–' : fmtRate(rps));
      setText(this.errv, fmtPct(err));
      this.errv.classList.toggle('bad', err > 0);
      this.rspark.draw(this.rps, 1);
      this.espark.draw(this.errs, 5);
      this.latency(b.latency, now);
      this.health(b);
    }

    latency(lat, now) {
      if (!lat || !Array.isArray(lat.buckets) || !Array.isArray(lat.bounds_ms)) return;
      this.lat.push({ t: now, buckets: lat.buckets });
      while (this.lat.length > 1 && now - this.lat[0].t > LATENCY_WINDOW_MS) this.lat.shift();
      const first = this.lat[0].buckets;
      let counts = lat.buckets.map((c, i) => Math.max(0, c - (first[i] || 0)));
      let scope = 'over the last minute';
      if (!counts.some((c) => c > 0)) {
        counts = lat.buckets;
        scope = 'since start';
      }
      [0.5, 0.9, 0.99].forEach((q, i) => setText(this.ps[i], fmtMs(quantile(counts, lat.bounds_ms, q))));
      setAttr(this.latCell, 'title', 'response times ' + scope + ', estimated from the histogram');
    }

    health(b) {
      const history = Array.isArray(b.health_history) ? b.health_history : [];
      this.strip.draw(history);
      let text;
      if (b.last_check) {
        text = (b.last_check.ok ? 'ok' : 'failed') + ' · ' + fmtAgo(b.last_check.time_ms);
        if (!b.last_check.ok && b.last_error) text += ' · ' + b.last_error;
      } else {
        text = 'no checks yet';
      }
      setText(this.hsub, text);
      this.hsub.classList.toggle('bad', !!(b.last_check && !b.last_check.ok));
      setAttr(this.hsub, 'title', b.last_error ? 'last error: ' + b.last_error : '');
    }

    showActions(state, removed) {
      const key = state + (removed ? ':removed' : '') + (this.busy ? ':busy' : '');
      if (key === this.actKey) return;
      this.actKey = key;
      const { drain, disable, enable, remove } = this.buttons;
      drain.hidden = removed || state === 'draining';
      disable.hidden = removed || state === 'disabled';
      enable.hidden = removed || state === 'up';
      remove.hidden = removed;
      for (const btn of Object.values(this.buttons)) btn.disabled = this.busy;
    }

    setBusy(busy) {
      this.busy = busy;
      this.showActions(this.b.state, this.b.removed === true);
    }

    openWeight() {
      this.winput.value = String(this.b.weight);
      this.wform.hidden = false;
      this.weight.hidden = true;
      this.wbtn.hidden = true;
      this.winput.focus();
      this.winput.select();
    }

    closeWeight() {
      this.wform.hidden = true;
      this.weight.hidden = false;
      this.wbtn.hidden = this.b.removed === true;
    }

    // the first click arms the button, a second within 4 s removes
    armRemove(btn) {
      if (this.armed) {
        clearTimeout(this.armed);
        this.disarm(btn);
        return true;
      }
      btn.classList.add('armed');
      btn.textContent = 'Confirm remove';
      this.armed = setTimeout(() => this.disarm(btn), 4000);
      return false;
    }

    disarm(btn) {
      this.armed = 0;
      btn.classList.remove('armed');
      btn.textContent = 'Remove';
    }

    matches(q) {
      const b = this.b;
      return ('#' + b.id + ' ' + b.url + ' ' + b.addr + ' ' + b.state + ' ' + this.pool
        + (b.removed ? ' removed' : ''))
        .toLowerCase().includes(q);
    }
  }

  // ------------------------------------------------------------------ actions
  async function run(row, method, body, done) {
    row.setBusy(true);
    const path = backendsPath(row.pool) + '/' + row.id;
    try {
      const r = await api(method, path, body);
      if (r.data && r.data.id === row.id && typeof r.data.state === 'string') row.show(r.data);
      toast('ok', done);
      pollSoon();
    } catch (e) {
      failed(e, method + ' ' + path);
    } finally {
      row.setBusy(false);
    }
  }

  rowsEl.addEventListener('click', (ev) => {
    const btn = ev.target.closest('button[data-action]');
    const rowEl = btn && btn.closest('.b');
    const row = rowEl && rows.get(Number(rowEl.dataset.id));
    if (!row || btn.disabled) return;
    const id = row.id;
    switch (btn.dataset.action) {
      case 'weight': row.openWeight(); break;
      case 'weight-cancel': row.closeWeight(); break;
      case 'drain': run(row, 'PATCH', { state: 'draining' }, `backend #${id} is draining`); break;
      case 'disable': run(row, 'PATCH', { state: 'disabled' }, `backend #${id} is disabled`); break;
      case 'enable': run(row, 'PATCH', { state: 'up' }, `backend #${id} is enabled`); break;
      case 'remove':
        if (row.armRemove(btn)) run(row, 'DELETE', undefined, `backend #${id} removed`);
        break;
      default: break;
    }
  });
  rowsEl.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const rowEl = ev.target.closest('.b');
    const row = rowEl && rows.get(Number(rowEl.dataset.id));
    if (!row) return;
    const w = Number(row.winput.value);
    row.closeWeight();
    if (w === row.b.weight) return;
    run(row, 'PATCH', { weight: w }, `backend #${row.id}: weight ${w}`);
  });
  rowsEl.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Escape') return;
    const rowEl = ev.target.closest('.b');
    const row = rowEl && rows.get(Number(rowEl.dataset.id));
    if (row) row.closeWeight();
  });

  $('add-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const url = $('add-url').value.trim();
    if (!url) return;
    const body = { url };
    const w = $('add-weight').value.trim();
    if (w) body.weight = Number(w);
    const btn = $('add-submit');
    btn.disabled = true;
    const path = backendsPath($('add-pool').value || 'default');
    try {
      const r = await api('POST', path, body);
      toast('ok', `backend #${r.data.id} added to ${r.data.pool}: ${r.data.url}`, r.data.warnings);
      $('add-url').value = '';
      pollSoon();
    } catch (e) {
      failed(e, 'POST ' + path);
    } finally {
      btn.disabled = false;
    }
  });

  $('reload').addEventListener('click', async () => {
    const btn = $('reload');
    btn.disabled = true;
    try {
      const d = (await api('POST', '/reload')).data || {};
      const list = (k) => (Array.isArray(d[k]) ? d[k] : []);
      const backends = d.backends || {};
      const of = (k) => (Array.isArray(backends[k]) ? backends[k] : []);
      const details = [
        ...list('changes'),
        ...of('added').map((x) => 'added ' + x),
        ...of('removed').map((x) => 'removed ' + x),
        ...of('changed'),
      ];
      toast('ok', details.length ? 'config reloaded' : 'config reloaded: nothing changed', details);
      const warn = [...list('restart_required'), ...list('replaced_runtime_changes'), ...list('warnings')];
      if (warn.length) toast('warn', 'reload notes', warn);
      pollSoon();
    } catch (e) {
      failed(e, 'POST /reload');
    } finally {
      btn.disabled = false;
    }
  });

  let filter = '';
  let poolFilter = '';
  function applyFilter() {
    let shown = 0;
    const seen = new Map();
    for (const row of rows.values()) {
      const hide = (poolFilter !== '' && row.pool !== poolFilter)
        || (filter !== '' && !row.matches(filter));
      if (row.el.hidden !== hide) row.el.hidden = hide;
      if (!hide) shown++;
      seen.set(row.pool, (seen.get(row.pool) || 0) + (hide ? 0 : 1));
    }
    for (const [name, g] of groups) {
      const hide = poolFilter !== '' ? name !== poolFilter : filter !== '' && !seen.get(name);
      if (g.el.hidden !== hide) g.el.hidden = hide;
    }
    const narrowed = filter !== '' || poolFilter !== '';
    setText($('count'), narrowed ? `${shown} of ${rows.size}` : String(rows.size));
  }
  $('filter').addEventListener('input', () => {
    filter = $('filter').value.trim().toLowerCase();
    applyFilter();
  });
  $('pool-filter').addEventListener('change', () => {
    poolFilter = $('pool-filter').value;
    applyFilter();
  });

  // ------------------------------------------------------------------ pools
  // name -> { el, head, title, sub, body }: a heading and the pool's rows, in /pools order
  const groups = new Map();
  function group(p, index) {
    let g = groups.get(p.name);
    if (!g) {
      const el = h('div', 'pool-group');
      el.dataset.pool = p.name;
      const head = h('div', 'pool-head');
      const title = h('h3', '', p.name);
      const sub = h('span', 'sub');
      head.append(title, sub);
      const body = h('div', 'pool-rows');
      el.append(head, body);
      g = { el, head, sub, body };
      groups.set(p.name, g);
    }
    // in /pools order (default first); moved only when out of place
    const at = rowsEl.children[index] || null;
    if (at !== g.el) rowsEl.insertBefore(g.el, at);
    return g;
  }

  // the pool selects follow the pools (a reload may add or remove some)
  function syncSelect(sel, names, keep) {
    const want = keep.concat(names);
    const have = [...sel.options].map((o) => o.value);
    if (have.join('\n') === want.join('\n')) return;
    const value = sel.value;
    sel.replaceChildren(...want.map((v) => {
      const o = h('option', '', v === '' ? 'All pools' : v);
      o.value = v;
      return o;
    }));
    sel.value = want.includes(value) ? value : want[0];
  }

  function renderPools(pools) {
    const names = pools.map((p) => p.name);
    const several = names.length > 1;
    for (const [i, p] of pools.entries()) {
      const g = group(p, i);
      const bits = [p.strategy, `${p.states.up} / ${p.size} up`];
      if (p.routes.length) bits.push('routes: ' + p.routes.join(', '));
      if (p.serves_unmatched) bits.push('takes unmatched requests');
      setText(g.sub, bits.join(' · '));
      if (g.head.hidden === several) g.head.hidden = !several;
    }
    for (const [name, g] of groups) {
      if (!names.includes(name)) {
        g.el.remove();
        groups.delete(name);
      }
    }
    syncSelect($('pool-filter'), names, ['']);
    syncSelect($('add-pool'), names, []);
    $('pool-filter').hidden = !several;
    $('add-pool').hidden = !several;
    if (poolFilter && !names.includes(poolFilter)) poolFilter = '';
    const def = pools.find((p) => p.default);
    if (def) setText($('strategy'), several ? `${def.strategy} · ${names.length} pools` : def.strategy);
  }

  // ------------------------------------------------------------------ rendering a poll
  function setConn(state, text) {
    const c = $('conn');
    if (c.dataset.state !== state) c.dataset.state = state;
    setText(c, text);
    rowsEl.classList.toggle('stale', state === 'down');
  }

  // `lists`: each pool's GET .../backends answer, in the order of `pools`
  function renderBackends(pools, lists, now) {
    renderPools(pools);
    const seen = new Set();
    const counts = { up: 0, down: 0, draining: 0, disabled: 0, ejected: 0, removed: 0 };
    const all = [];
    pools.forEach((p, i) => {
      const g = groups.get(p.name);
      for (const b of lists[i].backends) {
        all.push(b);
        seen.add(b.id);
        let row = rows.get(b.id);
        if (!row) {
          row = new Row(b);
          rows.set(b.id, row);
          g.body.appendChild(row.el);
        }
        row.sample(b, now);
        if (b.removed) counts.removed++;
        else if (b.state in counts) counts[b.state]++;
      }
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.el.remove();
        rows.delete(id);
      }
    }
    $('empty').hidden = rows.size > 0;
    const total = all.length - counts.removed;
    setText($('g-backends'), `${counts.up} / ${total}`);
    const parts = ['down', 'ejected', 'draining', 'disabled', 'removed']
      .filter((k) => counts[k] > 0).map((k) => `${counts[k]} ${k}`);
    setText($('g-backends-sub'), parts.length ? parts.join(' · ') : 'all taking requests');
    $('g-backends').classList.toggle('bad', counts.down + counts.ejected > 0);
    applyFilter();
  }

  const chips = new Map();
  for (const c of CLASSES) {
    const chip = h('span', 'chip k' + c[0]);
    const v = h('span', 'num', '–');
    v.dataset.field = 'class-' + c;
    chip.append(h('b', '', c + ' '), v);
    $('g-classes').appendChild(chip);
    chips.set(c, v);
    const key = h('span', 'key k' + c[0], c);
    $('legend-classes').appendChild(key);
  }

  let prevStats = null;
  function renderStats(st, now) {
    const responses = st.responses || {};
    if (prevStats && now > prevStats.t) {
      const dt = (now - prevStats.t) / 1000;
      const rate = (a, b) => Math.max(0, (a || 0) - (b || 0)) / dt;
      const p = prevStats.s;
      const byClass = CLASSES.map((c) => rate(responses[c], (p.responses || {})[c]));
      byClass.forEach((v, i) => {
        push(global.classes[i], v);
        setText(chips.get(CLASSES[i]), fmtRate(v));
      });
      const total = byClass.reduce((a, b) => a + b, 0);
      setText($('g-rps'), fmtRate(total));
      push(global.out, rate(st.bytes_out, p.bytes_out));
      push(global.in, rate(st.bytes_in, p.bytes_in));
      setText($('g-out'), fmtBytes(global.out[global.out.length - 1]) + '/s');
      setText($('g-in'), 'in ' + fmtBytes(global.in[global.in.length - 1]) + '/s');
      setText($('g-accepted'), fmtRate(rate(st.accepted_connections, p.accepted_connections))
        + ' new/s · ' + fmtInt(st.accepted_connections) + ' accepted');
      setText($('g-tls-sub'), fmtRate(rate(st.tls_handshakes, p.tls_handshakes)) + '/s · '
        + fmtInt(st.tls_handshake_failures || 0) + ' failed');
      setText($('g-limited'), fmtRate(rate(st.rate_limited, p.rate_limited)) + ' 429/s · '
        + fmtInt(st.rate_limited || 0) + ' rate-limited');
      drawClasses();
      drawBytes();
    }
    prevStats = { t: now, s: st };
    setText($('g-open'), fmtInt(st.open_connections || 0) + ' open');
    setText($('g-tls'), fmtInt(st.tls_handshakes || 0));
    const foot = [
      fmtInt(st.backend_requests || 0) + ' requests sent to backends',
      fmtInt(st.accept_errors || 0) + ' accept errors',
      fmtInt(st.per_ip_refused || 0) + ' refused by max_connections_per_ip',
      fmtInt(st.access_log_dropped || 0) + ' access log lines dropped',
      (Array.isArray(st.workers) ? st.workers.length : 0) + ' workers',
    ];
    setText($('foot'), foot.join(' · '));
  }

  // ------------------------------------------------------------------ polling
  let timer = 0;
  let polling = false;
  let again = false;
  let polls = 0;

  async function poll() {
    clearTimeout(timer);
    timer = 0;
    if (authOpen) return;
    if (polling) {
      again = true;
      return;
    }
    polling = true;
    again = false;
    const started = performance.now();
    try {
      const [pools, stats] = await Promise.all([api('GET', '/pools'), api('GET', '/stats')]);
      const list = pools.data.pools;
      const lists = await Promise.all(list.map((p) => api('GET', backendsPath(p.name))));
      const now = performance.now();
      renderBackends(list, lists.map((l) => l.data), now);
      renderStats(stats.data, now);
      polls++;
      document.documentElement.dataset.polls = String(polls);
      document.documentElement.dataset.renderMs = (performance.now() - now).toFixed(1);
      setConn('live', 'live · every ' + POLL_MS / 1000 + ' s');
    } catch (e) {
      if (!(e instanceof HttpError)) setConn('down', 'cannot show the answer: ' + e.message);
      else if (e.status === 401) onUnauthorized();
      else setConn('down', e.status ? 'error: ' + e.message : 'offline: ' + e.message + ', retrying');
    } finally {
      polling = false;
      if (!authOpen) {
        const wait = again ? 0 : Math.max(100, POLL_MS - (performance.now() - started));
        timer = setTimeout(poll, wait);
      }
    }
  }
  function pollSoon() {
    clearTimeout(timer);
    timer = setTimeout(poll, 0);
  }

  $('logout').hidden = !token;
  poll();
})();

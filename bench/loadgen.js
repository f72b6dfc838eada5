// Load generator for bench/run.py: one Node process, the `ws` client, the
// same code for every server under test.
//
//   node loadgen.js '<json config>'
//
// Writes to stdout, one per line:
//   MARK <name>        phase boundaries; run.py samples the server's
//                      /proc/<pid>/stat and VmRSS when it reads them
//   RESULT <json>      the figures, last line
//   ERROR <text>       anything unexpected (unexpected closes, bad frames)
//
// Modes: fanout, echo, idle (raw clients held open for their memory),
// handshakes (raw clients connecting as fast as the server takes them),
// storm (a room that drops and reconnects at once), publish (a backend
// POSTing to our HTTP API while chat clients receive) and recover (a storm
// whose members come back with ?since=&epoch= and must get what they missed).
//
// Every phase is bounded in time; the process exits by itself.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));
const { performance } = require('perf_hooks');

const cfg = JSON.parse(process.argv[2]);
const MARKER = 'B~';
const SIZE = cfg.size || 64;

function mark(name) { process.stdout.write(`MARK ${name}\n`); }
const errors = [];
function error(text) {
  if (errors.length < 20) process.stdout.write(`ERROR ${text}\n`);
  errors.push(text);
}
function nowUs() { return Math.round(performance.now() * 1000); }
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Latency histogram: 10 µs buckets to 20 ms, then 1 ms buckets to 60 s.
class Histogram {
  constructor() { this.fine = new Float64Array(2000); this.coarse = new Float64Array(60000); this.n = 0; }
  add(us) {
    this.n++;
    if (us < 20000) this.fine[Math.max(0, Math.floor(us / 10))]++;
    else this.coarse[Math.min(59999, Math.floor(us / 1000))]++;
  }
  quantile(q) {
    if (!this.n) return null;
    let want = q * this.n, seen = 0;
    for (let i = 0; i < this.fine.length; i++) { seen += this.fine[i]; if (seen >= want) return (i + 0.5) * 10; }
    for (let i = 20; i < this.coarse.length; i++) { seen += this.coarse[i]; if (seen >= want) return (i + 0.5) * 1000; }
    return 60e6;
  }
}

// A bench message: exactly SIZE bytes, JSON-safe, "B~sender~seq~time~....".
function payload(sender, seq) {
  const head = `${MARKER}${sender}~${seq}~${nowUs()}~`;
  return head + '.'.repeat(Math.max(0, SIZE - head.length));
}
// Parse "B~sender~seq~time~" out of a frame (ours wraps it in JSON, the Node
// reference relays it raw); null if the frame is not a bench message.
function parse(text) {
  // Our history frame holds earlier bench messages: not a delivery.
  if (text.startsWith('{"type":"') && !text.startsWith('{"type":"message"')) return null;
  const i = text.indexOf(MARKER);
  if (i < 0) return null;
  const a = text.indexOf('~', i + 2), b = text.indexOf('~', a + 1), c = text.indexOf('~', b + 1);
  if (a < 0 || b < 0 || c < 0) return null;
  return { sender: +text.slice(i + 2, a), seq: +text.slice(a + 1, b), t: +text.slice(b + 1, c) };
}
// What the client sends: ours takes the seed's JSON {"name","message"};
// the Node reference gets the same bytes and relays them unchanged.
function wrap(message) { return cfg.raw ? message : JSON.stringify({ name: 'b', message }); }

let lastOther = 0; // time (ms) a non-bench frame last arrived
let greeted = 0;
let opened = 0;
let closedUnexpectedly = 0;
let stopping = false;

// What every connection of a scenario offers, for both clients: the
// subprotocols (cfg.protocol, or the list cfg.protocols, then
// cfg.extraProtocols such as a "bearer.<token>"), extra request headers
// (cfg.headers, e.g. Authorization) and query parameters (cfg.query, e.g.
// token, since, epoch), so later scenarios can authenticate or resume
// without a new client.
//
// cfg.clientsFile names a JSON list with one entry per client, {offers,
// user}: the subprotocols client i offers besides (its own "bearer.<token>",
// too many to pass on the command line) and the user its welcome must name.
const perClient = cfg.clientsFile ? JSON.parse(fs.readFileSync(cfg.clientsFile, 'utf8')) : null;
function clientEntry(index) {
  return perClient && index !== undefined ? perClient[index % perClient.length] : null;
}
function protocols(index) {
  const main = cfg.protocols || (cfg.protocol ? [cfg.protocol] : []);
  const own = clientEntry(index);
  return [...main, ...(cfg.extraProtocols || []), ...(own ? own.offers : [])];
}
function withQuery(url) {
  if (!cfg.query) return url;
  const u = new URL(url);
  for (const [k, v] of Object.entries(cfg.query)) u.searchParams.set(k, String(v));
  return u.toString();
}

function connect(url, onMessage, index) {
  return new Promise((resolve) => {
    const ws = new WebSocket(withQuery(url), protocols(index),
                             { perMessageDeflate: false, headers: cfg.headers || {} });
    let done = false;
    const finish = (v) => { if (!done) { done = true; resolve(v); } };
    ws.on('open', () => { opened++; if (cfg.mode === 'echo') { greeted++; finish(ws); } });
    ws.on('message', (data, isBinary) => {
      const text = data.toString();
      if (!done) {
        greeted++;
        finish(ws);
        lastOther = performance.now();
      }
      onMessage(ws, text);
    });
    ws.on('error', (e) => { error(`socket error: ${e.message}`); finish(null); });
    ws.on('close', (code) => {
      if (!stopping) { closedUnexpectedly++; error(`unexpected close ${code}`); }
      finish(null);
    });
  });
}

async function connectAll(n, urlFor, onMessage, concurrency) {
  const sockets = new Array(n);
  let next = 0;
  const deadline = performance.now() + (cfg.connectTimeout || 120) * 1000;
  async function worker() {
    while (next < n && performance.now() < deadline) {
      const i = next++;
      sockets[i] = await connect(urlFor(i), onMessage, i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return sockets.filter(Boolean);
}

// Wait until no non-bench frame (joins, welcomes) arrived for `quietMs`.
async function settle(quietMs, maxMs) {
  const end = performance.now() + maxMs;
  while (performance.now() < end && performance.now() - lastOther < quietMs) await sleep(50);
}

function cpuMs(before) {
  const u = process.cpuUsage(before);
  return (u.user + u.system) / 1000;
}

// What a member of our chat room learns from its frames (cfg.chat): the
// room's size (the `count` of its welcome and of every presence event) and
// the room's `seq`, which must grow by exactly one from frame to frame.
const room = { seqGaps: 0, presenceEvents: 0 };
function roomSeq(member, seq) {
  if (member.roomSeq !== undefined && seq !== member.roomSeq + 1) room.seqGaps++;
  member.roomSeq = seq;
}
// A frame of ours as an event object, or null when it is not one; the
// member's count and when it last changed follow every event that has one.
function eventOf(member, text) {
  let event;
  try { event = JSON.parse(text); } catch (e) { return null; }
  if (event === null || typeof event !== 'object') return null;
  if (typeof event.count === 'number') {
    member.count = event.count;
    member.countAt = performance.now();
  }
  return event;
}
function roomFrame(member, text) {
  const event = eventOf(member, text);
  if (event === null) return;
  if (event.type === 'presence') room.presenceEvents++;
  if (typeof event.epoch === 'string') member.epoch = event.epoch;
  if (typeof event.seq === 'number') roomSeq(member, event.seq);
}
// The room seq of one of our message frames, which ends with "seq":N}.
function seqOf(text) {
  const i = text.lastIndexOf('"seq":');
  if (i < 0) return -1;
  let v = 0;
  for (let j = i + 6; j < text.length; j++) {
    const c = text.charCodeAt(j) - 48;
    if (c < 0 || c > 9) break;
    v = v * 10 + c;
  }
  return v;
}
// Wait (at most maxMs) until every member's count is the number of members,
// then holdMs more in case a late event makes one wrong again.  `rightAt`
// is when the last member's count last changed, or null while any is wrong.
async function countsRight(members, maxMs, holdMs = 300) {
  const wrong = () => members.reduce((w, m) => w + (m.count === members.length ? 0 : 1), 0);
  const end = performance.now() + maxMs;
  while (wrong() && performance.now() < end) await sleep(20);
  if (!wrong()) await sleep(holdMs);
  const left = wrong();
  const rightAt = left ? null : members.reduce((t, m) => Math.max(t, m.countAt), 0);
  return { wrong: left, rightAt };
}

async function fanout() {
  const n = cfg.clients, S = cfg.senders;
  const hist = new Histogram();
  let received = 0, inWindow = false, windowReceived = 0;
  const outstanding = new Int32Array(S);
  const sent = new Int32Array(S);
  let sending = false;
  let senders = [];
  function sendOne(s) {
    senders[s].send(wrap(payload(s, sent[s])));
    sent[s]++;
    outstanding[s]++;
  }
  // Per receiver and sender: the next seq expected, and the seqs skipped
  // by a gap, so a copy that comes later is out of order, not duplicated.
  let unique = 0, duplicated = 0, seqGaps = 0, late = 0;
  function account(ws, m) {
    if (!ws.nextSeq) ws.nextSeq = new Float64Array(S);
    const expected = ws.nextSeq[m.sender];
    if (m.seq === expected) { ws.nextSeq[m.sender] = expected + 1; unique++; return; }
    if (m.seq > expected) {
      seqGaps++;
      unique++;
      if (!ws.skipped) ws.skipped = new Set();
      for (let q = expected; q < m.seq && ws.skipped.size < 100000; q++) {
        ws.skipped.add(q * S + m.sender);
      }
      ws.nextSeq[m.sender] = m.seq + 1;
    } else if (ws.skipped && ws.skipped.delete(m.seq * S + m.sender)) {
      late++;
      unique++;
    } else {
      duplicated++;
    }
  }
  const onMessage = (ws, text) => {
    const m = parse(text);
    if (m === null) {
      lastOther = performance.now();
      if (cfg.chat) roomFrame(ws, text);
      return;
    }
    received++;
    account(ws, m);
    if (cfg.chat) roomSeq(ws, seqOf(text));
    if (inWindow) { windowReceived++; hist.add(nowUs() - m.t); }
    if (ws.benchSender === m.sender) {
      outstanding[m.sender]--;
      if (sending && !cfg.rate) sendOne(m.sender);
    }
  };
  const t0 = performance.now();
  const fillCpu0 = process.cpuUsage();
  const sockets = await connectAll(n, () => cfg.url, onMessage, cfg.concurrency || 50);
  const connectSecs = (performance.now() - t0) / 1000;
  if (sockets.length < n) error(`only ${sockets.length}/${n} clients connected`);
  // Filling the room: until every member's count is the room's size (our
  // chat), or until the last greeting (no counts to wait for).
  let fillSecs = connectSecs, wrongCounts = null;
  if (cfg.chat) {
    const c = await countsRight(sockets, (cfg.settleMax || 60) * 1000, 0);
    wrongCounts = c.wrong;
    fillSecs = c.rightAt === null ? null : (c.rightAt - t0) / 1000;
  }
  const fillLgCpu = cpuMs(fillCpu0) / 1000 / ((performance.now() - t0) / 1000);
  await settle(cfg.quietMs || 500, (cfg.settleMax || 60) * 1000);
  const settleSecs = (performance.now() - t0) / 1000 - connectSecs;
  senders = sockets.slice(0, S);
  senders.forEach((ws, s) => { ws.benchSender = s; });
  // Warm up briefly outside the measured window.
  sending = true;
  let timer = null;
  if (cfg.rate) {
    const start = performance.now();
    let due = 0;
    timer = setInterval(() => {
      const total = Math.floor(((performance.now() - start) / 1000) * cfg.rate);
      while (due < total) { sendOne(due % S); due++; }
    }, 5);
  } else {
    for (let s = 0; s < S; s++) for (let w = 0; w < (cfg.window || 4); w++) sendOne(s);
  }
  await sleep((cfg.warmup || 1) * 1000);
  const sentBefore = sent.reduce((a, b) => a + b, 0);
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  inWindow = true;
  mark('start');
  await sleep(cfg.duration * 1000);
  mark('end');
  inWindow = false;
  const wall = (performance.now() - w0) / 1000;
  const lgCpu = cpuMs(cpu0) / 1000;
  const sentInWindow = sent.reduce((a, b) => a + b, 0) - sentBefore;
  sending = false;
  if (timer) clearInterval(timer);
  const totalSent = sent.reduce((a, b) => a + b, 0);
  const expected = totalSent * sockets.length;
  // Drain: wait for every copy of every message, bounded.
  const drainEnd = performance.now() + (cfg.drain || 10) * 1000;
  while (unique < expected && performance.now() < drainEnd) await sleep(20);
  stopping = true;
  return {
    clients: sockets.length, senders: S, connect_s: connectSecs, settle_s: settleSecs,
    fill_s: fillSecs, fill_wrong_counts: wrongCounts, fill_loadgen_cpu_share: fillLgCpu,
    window_s: wall, sent_in_window: sentInWindow, deliveries_in_window: windowReceived,
    deliveries_per_s: windowReceived / wall, msgs_per_s: sentInWindow / wall,
    p50_us: hist.quantile(0.5), p99_us: hist.quantile(0.99),
    sent: totalSent, expected, received, lost: expected - unique, duplicated,
    out_of_order: seqGaps, late, room_seq_gaps: cfg.chat ? room.seqGaps : null,
    loadgen_cpu_share: lgCpu / wall, unexpected_closes: closedUnexpectedly,
  };
}

async function echo() {
  const n = cfg.clients;
  const hist = new Histogram();
  let inWindow = false, trips = 0, running = true;
  const onMessage = (ws, text) => {
    const m = parse(text);
    if (m === null) { error('echo: unexpected frame'); return; }
    if (inWindow) { trips++; hist.add(nowUs() - m.t); }
    if (running) ws.send(payload(ws.benchIndex, m.seq + 1));
  };
  const sockets = await connectAll(n, () => cfg.url, onMessage, cfg.concurrency || 50);
  if (sockets.length < n) error(`only ${sockets.length}/${n} clients connected`);
  sockets.forEach((ws, i) => { ws.benchIndex = i; ws.send(payload(i, 0)); });
  await sleep((cfg.warmup || 1) * 1000);
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  inWindow = true;
  mark('start');
  await sleep(cfg.duration * 1000);
  mark('end');
  inWindow = false;
  const wall = (performance.now() - w0) / 1000;
  const lgCpu = cpuMs(cpu0) / 1000;
  running = false;
  await sleep(200);
  stopping = true;
  return {
    clients: sockets.length, window_s: wall, round_trips: trips, round_trips_per_s: trips / wall,
    p50_us: hist.quantile(0.5), p99_us: hist.quantile(0.99),
    loadgen_cpu_share: lgCpu / wall, unexpected_closes: closedUnexpectedly,
  };
}

// The handshake scenarios use a raw TCP client that writes a fixed upgrade
// request and waits for the 101 and the first frame (the greeting): the
// `ws` client spends ~400 us of CPU per handshake, which would cap the
// measurement at ~2,500 handshakes/s on one core, below the 5,000/s target.
// It reads the server's (unmasked) frames to answer pings (an idle client
// that never pongs is dropped after --ping-interval + --ping-timeout) and
// to hand text frames to opts.onText.
//
// opts: greeting (false: done at the 101, for echo servers that greet
// nobody), hist (handshake latency, from the TCP connect to the greeting),
// timeoutMs (per attempt), failures (an object counting failed attempts by
// reason; without it a failure is an ERROR line), onText(sock, text).
// `index` is the client's number, for what it offers (cfg.clientsFile); the
// socket keeps it, and when its attempt started (startedAt).
const net = require('net');
function rawConnect(url, opts = {}, index) {
  const u = new URL(withQuery(url));
  const offered = protocols(index);
  const request = `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n` +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
    'Sec-WebSocket-Version: 13\r\n' +
    (offered.length ? `Sec-WebSocket-Protocol: ${offered.join(', ')}\r\n` : '') +
    Object.entries(cfg.headers || {}).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
  const wantGreeting = opts.greeting !== false;
  return new Promise((resolve) => {
    const started = performance.now();
    const sock = net.connect({ host: u.hostname, port: +u.port });
    sock.setNoDelay(true);
    sock.index = index;
    sock.startedAt = started;
    let head = '', state = 0; // 0: waiting for the 101, 1: for the greeting, 2: open
    let settled = false, frames = null, fragments = null;
    const timer = opts.timeoutMs
      ? setTimeout(() => fail('no greeting in time'), opts.timeoutMs) : null;
    const settle = (v) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      resolve(v);
    };
    function fail(reason) {
      if (settled) return;
      if (opts.failures) opts.failures[reason] = (opts.failures[reason] || 0) + 1;
      else error(`connect failed: ${reason}`);
      sock.destroy();
      settle(null);
    }
    function ready() {
      state = 2;
      greeted++;
      sock.greetedAt = performance.now();
      if (opts.hist) opts.hist.add((sock.greetedAt - started) * 1000);
      settle(sock);
    }
    function frame(op, body) {
      if (op === 0x9) {
        if (body.length <= 125) {
          // Pong with the ping's payload, masked with a zero key.
          sock.write(Buffer.concat([Buffer.from([0x8a, 0x80 | body.length, 0, 0, 0, 0]), body]));
        }
        return;
      }
      if (op === 0x8) {
        sock.closeCode = body.length >= 2 ? body.readUInt16BE(0) : 1005;
        if (state === 1) fail(`close ${sock.closeCode} before the greeting`);
        return;
      }
      if (state === 1) ready();
      if (op === 0x1 && opts.onText) opts.onText(sock, body.toString());
    }
    const consume = (chunk) => {
      frames = frames && frames.length ? Buffer.concat([frames, chunk]) : chunk;
      for (;;) {
        if (frames.length < 2) return;
        let len = frames[1] & 0x7f, off = 2;
        if (len === 126) { if (frames.length < 4) return; len = frames.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (frames.length < 10) return; len = Number(frames.readBigUInt64BE(2)); off = 10; }
        if (frames.length < off + len) return;
        const fin = frames[0] & 0x80, op = frames[0] & 0x0f;
        const body = frames.subarray(off, off + len);
        frames = frames.subarray(off + len);
        if (op >= 0x8 || (op && fin)) { frame(op, body); continue; }
        if (op) fragments = { op, parts: [] };
        if (!fragments) continue;
        fragments.parts.push(body);
        if (fin) { frame(fragments.op, Buffer.concat(fragments.parts)); fragments = null; }
      }
    };
    sock.on('connect', () => sock.write(request));
    sock.on('data', (chunk) => {
      if (state === 0) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!head.startsWith('HTTP/1.1 101')) { fail(head.split('\r\n')[0]); return; }
        opened++;
        state = 1;
        if (!wantGreeting) ready();
        chunk = Buffer.from(head.slice(end + 4), 'latin1');
        if (!chunk.length) return;
      }
      lastOther = performance.now();
      consume(chunk);
    });
    sock.on('error', (e) => {
      if (!settled) fail(`socket error: ${e.code || e.message}`);
      else if (!stopping && !sock.dropped) error(`socket error: ${e.message}`);
    });
    sock.on('close', () => {
      if (!settled) {
        fail(state === 0 ? 'closed before the 101' : 'closed before the greeting');
        return;
      }
      if (!stopping && !sock.dropped) {
        closedUnexpectedly++;
        error(`unexpected close${sock.closeCode ? ` ${sock.closeCode}` : ''}`);
      }
    });
  });
}

// Open n raw connections, at most `concurrency` in flight, each started as
// soon as one before it is done; returns the open ones, how many failed
// (or were never tried before cfg.connectTimeout), and when the phase
// ended and the last greeting came (performance.now() ms).
async function rawFill(n, urlFor, concurrency, opts) {
  const sockets = [];
  let next = 0, failedCount = 0;
  const t0 = performance.now();
  const deadline = t0 + (cfg.connectTimeout || 120) * 1000;
  async function worker() {
    while (next < n && performance.now() < deadline) {
      const i = next++;
      const s = await rawConnect(urlFor(i), opts, i);
      if (s) sockets.push(s); else failedCount++;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  if (next < n) error(`connect phase timed out: ${n - next} of ${n} connections never tried`);
  const lastGreeting = sockets.reduce((t, s) => Math.max(t, s.greetedAt), t0);
  return { sockets, failed: failedCount + n - next, secs: (performance.now() - t0) / 1000,
           lastGreeting };
}

// How a storm drops a member: `close` sends a close frame and FIN without
// waiting for the answer, `destroy` closes the TCP socket with no
// WebSocket close at all, `reset` aborts it with an RST.
function drop(sock, how) {
  sock.dropped = true;
  if (how === 'close') sock.end(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
  else if (how === 'reset') sock.resetAndDestroy();
  else sock.destroy();
}

function attemptOpts(hist, failures) {
  return { greeting: cfg.greeting !== false, hist, failures,
           timeoutMs: (cfg.attemptTimeout || 30) * 1000,
           onText: cfg.chat ? roomFrame : null };
}

// Wraps onText so that each socket's first frame, its welcome, is checked
// to name the user of the client's token (cfg.clientsFile), or none for an
// anonymous client; `tally` counts the right and the wrong ones.
function checkingIdentity(tally, onText) {
  return (sock, text) => {
    if (!sock.identityChecked) {
      sock.identityChecked = true;
      const own = clientEntry(sock.index);
      const want = own ? own.user : undefined;
      let got = null;
      try { got = JSON.parse(text).user; } catch (e) { got = null; }
      if (got === want) tally.right++;
      else {
        tally.wrong++;
        if (tally.wrong <= 3) error(`welcome names user ${got}, not ${want}`);
      }
    }
    if (onText) onText(sock, text);
  };
}

// cfg.clients connections to cfg.url (one chat room, or echo; cfg.rooms
// spreads them over rooms <url>-0, <url>-1, ...), at most cfg.concurrency
// in flight, as fast as the server takes them; for our chat in one room,
// then until every member's count is the room's size.  cfg.checkIdentity:
// every welcome must name the client's user (L{checkingIdentity}).
async function handshakes() {
  const hist = new Histogram(), failures = {}, identities = { right: 0, wrong: 0 };
  const rooms = cfg.rooms || 1;
  const urlFor = (i) => (rooms > 1 ? `${cfg.url}-${i % rooms}` : cfg.url);
  const opts = attemptOpts(hist, failures);
  if (cfg.checkIdentity) opts.onText = checkingIdentity(identities, opts.onText);
  const cpu0 = process.cpuUsage();
  mark('start');
  const got = await rawFill(cfg.clients, urlFor, cfg.concurrency || 200, opts);
  mark('connected');
  const lgCpu = cpuMs(cpu0) / 1000;
  const n = got.sockets.length;
  const out = {
    clients: n, attempted: cfg.clients, failed: got.failed, failures, rooms,
    concurrency: cfg.concurrency || 200, connect_s: got.secs, handshakes_per_s: n / got.secs,
    p50_us: hist.quantile(0.5), p99_us: hist.quantile(0.99), loadgen_cpu_share: lgCpu / got.secs,
  };
  if (cfg.checkIdentity) {
    out.identified = identities.right;
    out.misidentified = identities.wrong;
  }
  if (cfg.chat && n && rooms === 1) {
    const c = await countsRight(got.sockets, (cfg.countWait || 30) * 1000);
    mark('counted');
    out.wrong_counts = c.wrong;
    out.count_right_s = c.rightAt === null
      ? null : Math.max(0, c.rightAt - got.lastGreeting) / 1000;
    out.presence_events_per_member = room.presenceEvents / n;
    out.room_seq_gaps = room.seqGaps;
  }
  await sleep((cfg.hold || 0.3) * 1000);
  stopping = true;
  out.unexpected_closes = closedUnexpectedly;
  return out;
}

// cfg.clients members join one room (at most cfg.concurrency in flight);
// once every count is right, all drop at once (cfg.drop) and all reconnect
// at once (at most cfg.stormConcurrency in flight, default: all).
async function storm() {
  const fillFailures = {}, failures = {};
  const t0 = performance.now();
  const first = await rawFill(cfg.clients, () => cfg.url, cfg.concurrency || 200,
                              attemptOpts(null, fillFailures));
  const n = first.sockets.length;
  const out = { clients: n, fill_failed: first.failed, fill_failures: fillFailures,
                drop: cfg.drop || 'destroy' };
  if (cfg.chat && n) {
    const c = await countsRight(first.sockets, (cfg.countWait || 30) * 1000);
    out.fill_wrong_counts = c.wrong;
  } else {
    await settle(300, 5000);
  }
  out.fill_s = (performance.now() - t0) / 1000;
  const hist = new Histogram();
  const cpu0 = process.cpuUsage();
  mark('drop');
  const dropped = performance.now();
  for (const s of first.sockets) drop(s, cfg.drop || 'destroy');
  const again = await rawFill(n, () => cfg.url, cfg.stormConcurrency || n,
                              attemptOpts(hist, failures));
  mark('back');
  const stormSecs = (performance.now() - dropped) / 1000;
  Object.assign(out, {
    reconnected: again.sockets.length, failed: again.failed, failures,
    back_s: again.sockets.length ? (again.lastGreeting - dropped) / 1000 : null, storm_s: stormSecs,
    p50_us: hist.quantile(0.5), p99_us: hist.quantile(0.99),
    loadgen_cpu_share: cpuMs(cpu0) / 1000 / stormSecs,
  });
  if (cfg.chat && again.sockets.length) {
    const c = await countsRight(again.sockets, (cfg.countWait || 30) * 1000);
    mark('counted');
    out.wrong_counts = c.wrong;
    out.count_right_s = c.rightAt === null ? null : (c.rightAt - dropped) / 1000;
    out.room_seq_gaps = room.seqGaps;
  }
  await sleep(300);
  stopping = true;
  out.unexpected_closes = closedUnexpectedly;
  return out;
}

// A condition waited for without polling: whatever changes what `test`
// reads calls check(); wait(ms) resolves true once the test holds, or false
// after ms.
class Condition {
  constructor(test) { this.test = test; this.waiters = []; }
  check() {
    if (this.waiters.length && this.test()) for (const w of this.waiters.splice(0)) w(true);
  }
  wait(ms) {
    if (this.test()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (v) => { clearTimeout(timer); resolve(v); };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      this.waiters.push(done);
    });
  }
}

// Our backend API: POST /api/rooms/<room of cfg.url>/publish with the bench
// message `message`, authorised by cfg.apiKey, over `agent`'s kept-alive
// connections.  Resolves {status, body, us} (status 0: no answer).
function apiRoom() { return decodeURIComponent(new URL(cfg.url).pathname.slice(1)); }
function apiPublish(agent, message) {
  const u = new URL(cfg.url);
  const body = JSON.stringify({ name: 'bench', message });
  const started = nowUs();
  return new Promise((resolve) => {
    const req = http.request({
      host: u.hostname, port: +u.port, method: 'POST', agent,
      path: `/api/rooms/${encodeURIComponent(apiRoom())}/publish`,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
                 Authorization: `Bearer ${cfg.apiKey}` },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(),
                                    us: nowUs() - started }));
      res.on('error', (e) => resolve({ status: 0, body: e.message, us: nowUs() - started }));
    });
    req.setTimeout((cfg.attemptTimeout || 30) * 1000, () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, body: e.message, us: nowUs() - started }));
    req.end(body);
  });
}
function keptAlive(sockets) { return new http.Agent({ keepAlive: true, maxSockets: sockets }); }
// Counts an API call that was not answered 200, by status, with the first
// few answers as ERROR lines.
function apiFailed(failures, answer) {
  const key = answer.status ? `HTTP ${answer.status}` : `no answer: ${answer.body}`;
  failures[key] = (failures[key] || 0) + 1;
  if (Object.values(failures).reduce((a, b) => a + b, 0) <= 3) {
    error(`publish answered ${key}: ${answer.body.slice(0, 200)}`);
  }
}

// cfg.clients chat members of one room (the `ws` client) receive what a
// backend publishes through the API: cfg.inFlight calls at a time, each
// on its kept-alive connection, for cfg.duration seconds after
// cfg.warmup.  Each message says when its call started, so a member
// measures the API-to-delivery latency; every member must get every
// published message once, in room seq order.
async function publish() {
  const n = cfg.clients, inFlight = cfg.inFlight || 16;
  const apiHist = new Histogram(), deliveryHist = new Histogram(), failures = {};
  let inWindow = false, windowCalls = 0, windowDeliveries = 0, running = true;
  let issued = 0, published = 0, unique = 0, duplicated = 0, stray = 0;
  // Which published message (by the number it was issued with) each member has.
  const capacity = () => Math.max(1024, issued);
  const onMessage = (ws, text) => {
    const m = parse(text);
    if (m === null) { lastOther = performance.now(); roomFrame(ws, text); return; }
    roomSeq(ws, seqOf(text));
    if (!ws.got || ws.got.length < capacity()) {
      const grown = new Uint8Array(2 * capacity());
      if (ws.got) grown.set(ws.got);
      ws.got = grown;
    }
    if (m.seq >= issued) stray++;
    else if (ws.got[m.seq]) duplicated++;
    else { ws.got[m.seq] = 1; unique++; }
    if (inWindow) { windowDeliveries++; deliveryHist.add(nowUs() - m.t); }
    drained.check();
  };
  const drained = new Condition(() => unique >= published * n);
  const fillCpu0 = process.cpuUsage(), t0 = performance.now();
  const members = await connectAll(n, () => cfg.url, onMessage, cfg.concurrency || 50);
  if (members.length < n) error(`only ${members.length}/${n} members connected`);
  const counted = await countsRight(members, (cfg.settleMax || 60) * 1000, 0);
  await settle(cfg.quietMs || 500, (cfg.settleMax || 60) * 1000);
  const fillSecs = (performance.now() - t0) / 1000, fillLgCpu = cpuMs(fillCpu0) / 1000 / fillSecs;
  const agent = keptAlive(inFlight);
  async function publisher() {
    while (running) {
      const seq = issued++;
      const answer = await apiPublish(agent, payload(0, seq));
      if (answer.status === 200) {
        published++;
        if (inWindow) { windowCalls++; apiHist.add(answer.us); }
      } else {
        apiFailed(failures, answer);
      }
    }
  }
  const publishers = Array.from({ length: inFlight }, publisher);
  await sleep((cfg.warmup || 1) * 1000);
  const cpu0 = process.cpuUsage(), w0 = performance.now();
  inWindow = true;
  mark('start');
  await sleep(cfg.duration * 1000);
  mark('end');
  inWindow = false;
  const wall = (performance.now() - w0) / 1000, lgCpu = cpuMs(cpu0) / 1000;
  running = false;
  await Promise.all(publishers);
  agent.destroy();
  const complete = await drained.wait((cfg.drain || 10) * 1000);
  stopping = true;
  return {
    clients: members.length, in_flight: inFlight, fill_s: fillSecs,
    fill_wrong_counts: counted.wrong, fill_loadgen_cpu_share: fillLgCpu, window_s: wall,
    publishes_in_window: windowCalls, publishes_per_s: windowCalls / wall,
    deliveries_in_window: windowDeliveries, deliveries_per_s: windowDeliveries / wall,
    api_p50_us: apiHist.quantile(0.5), api_p99_us: apiHist.quantile(0.99),
    p50_us: deliveryHist.quantile(0.5), p99_us: deliveryHist.quantile(0.99),
    issued, published, failed_calls: issued - published, failures,
    expected: published * members.length, received: unique + duplicated,
    lost: published * members.length - unique, duplicated, stray, drained: complete,
    out_of_order: null, room_seq_gaps: room.seqGaps,
    loadgen_cpu_share: lgCpu / wall, unexpected_closes: closedUnexpectedly,
  };
}

// What a member of a recovery storm (cfg.mode recover) makes of each frame
// once it is back, in `phase`: "first" (the resumed or welcome frame),
// "replay" (the missed events: exactly since+1 .. the resumed seq, in
// order), "history" (a plain welcome's history), then "live" (seq by one).
// A member is done once it has what it missed; `storm` keeps the tallies
// and the published seqs it must find.
function recoveryFrame(storm, sock, text) {
  const event = eventOf(sock, text);
  if (event === null) return;
  if (sock.phase === 'first') firstFrame(storm, sock, event);
  else if (sock.phase === 'replay') replayFrame(storm, sock, event);
  else if (sock.phase === 'history') historyFrame(storm, sock, event);
  else if (typeof event.seq === 'number') {
    if (event.seq !== sock.lastSeq + 1) storm.liveGaps++;
    sock.lastSeq = event.seq;
  }
}
function firstFrame(storm, sock, event) {
  if (event.type === 'resumed' && event.recovered === true) {
    storm.recovered++;
    storm.missedTotal += event.missed;
    Object.assign(sock, { phase: 'replay', resumedSeq: event.seq, missed: event.missed,
                          replayed: 0, lastSeq: sock.since });
    if (event.missed === 0) recoveryDone(storm, sock);
  } else if (event.type === 'resumed') {
    storm.notRecovered++;
  } else if (event.type === 'welcome') {
    Object.assign(sock, { phase: 'history', lastSeq: event.seq });
  }
}
function replayFrame(storm, sock, event) {
  if (typeof event.seq !== 'number') { sock.wrong++; return; }
  if (event.seq !== sock.lastSeq + 1) sock.wrong++;
  sock.lastSeq = Math.max(sock.lastSeq, event.seq);
  sock.replayed++;
  if (storm.published.has(event.seq) && event.source === 'api') sock.found++;
  if (sock.replayed >= sock.missed || event.seq >= sock.resumedSeq) recoveryDone(storm, sock);
}
function historyFrame(storm, sock, event) {
  if (event.type === 'history') {
    for (const m of event.messages || []) if (storm.published.has(m.seq)) sock.found++;
  } else if (typeof event.seq === 'number') {
    // No history came: what was published is not there.
    sock.lastSeq = event.seq;
  }
  recoveryDone(storm, sock);
}
// A member has what it missed: the time it took, and whether it is exact
// (every published message, no seq skipped or twice; when resuming, the
// room recovered it and replayed as many events as it announced).
function recoveryDone(storm, sock) {
  sock.phase = 'live';
  const replayedAll = sock.missed === undefined
    ? !storm.resume : sock.replayed === sock.missed && sock.lastSeq === sock.resumedSeq;
  const exact = sock.found === storm.published.size && sock.wrong === 0 && replayedAll;
  if (exact) storm.exact++;
  else if (storm.inexact++ < 3) {
    error(`member ${sock.index}: found ${sock.found} of ${storm.published.size} published, ` +
          `${sock.wrong} seqs wrong, replayed ${sock.replayed} of ${sock.missed}`);
  }
  storm.done++;
  storm.lastDone = performance.now();
  storm.hist.add((storm.lastDone - sock.startedAt) * 1000);
  storm.allDone.check();
}

// cfg.clients members join one room (at most cfg.concurrency in flight)
// and note their last seq and epoch; once every count is right, all drop at
// once (cfg.drop), cfg.missed messages are published through the API while
// they are away, and all reconnect at once (cfg.stormConcurrency in
// flight, default: all), with ?since=&epoch= when cfg.resume, else as
// newcomers.  Measured: until every member has what it missed (recovered:
// the resumed frame and the missed events; not: the welcome and history).
async function recover() {
  const fillFailures = {}, failures = {};
  const t0 = performance.now();
  const first = await rawFill(cfg.clients, () => cfg.url, cfg.concurrency || 200,
                              attemptOpts(null, fillFailures));
  const members = first.sockets, n = members.length;
  const out = { clients: n, fill_failed: first.failed, fill_failures: fillFailures,
                drop: cfg.drop || 'destroy', resume: !!cfg.resume, missed_published: 0 };
  const counted = await countsRight(members, (cfg.countWait || 30) * 1000);
  out.fill_wrong_counts = counted.wrong;
  out.fill_seq_gaps = room.seqGaps;
  out.fill_s = (performance.now() - t0) / 1000;
  const storm = { resume: !!cfg.resume, published: new Set(), hist: new Histogram(),
                  recovered: 0, notRecovered: 0,
                  missedTotal: 0, exact: 0, inexact: 0, done: 0, liveGaps: 0, lastDone: null };
  storm.allDone = new Condition(() => storm.done >= n);
  mark('drop');
  for (const s of members) drop(s, cfg.drop || 'destroy');
  const agent = keptAlive(1), apiFailures = {};
  for (let k = 0; k < (cfg.missed || 0); k++) {
    const answer = await apiPublish(agent, payload(0, k));
    if (answer.status === 200) storm.published.add(JSON.parse(answer.body).seq);
    else apiFailed(apiFailures, answer);
  }
  agent.destroy();
  out.missed_published = storm.published.size;
  out.publish_failures = apiFailures;
  const back = (i) => {
    const m = members[i];
    if (!cfg.resume || m.roomSeq === undefined || !m.epoch) return cfg.url;
    return `${cfg.url}?since=${m.roomSeq}&epoch=${encodeURIComponent(m.epoch)}`;
  };
  const opts = attemptOpts(new Histogram(), failures);
  opts.onText = (sock, text) => {
    if (sock.phase === undefined) {
      Object.assign(sock, { phase: 'first', since: members[sock.index].roomSeq, wrong: 0,
                            found: 0 });
    }
    recoveryFrame(storm, sock, text);
  };
  const cpu0 = process.cpuUsage();
  mark('reconnect');
  const reconnected = performance.now();
  const again = await rawFill(n, back, cfg.stormConcurrency || n, opts);
  const complete = await storm.allDone.wait((cfg.countWait || 30) * 1000);
  mark('recovered');
  const secs = (performance.now() - reconnected) / 1000;
  Object.assign(out, {
    reconnected: again.sockets.length, failed: again.failed, failures, all_done: complete,
    done: storm.done, recovered: storm.recovered, not_recovered: storm.notRecovered,
    exact: storm.exact, exact_share: n ? storm.exact / n : null,
    missed_per_member: storm.recovered ? storm.missedTotal / storm.recovered : null,
    all_recovered_s: storm.lastDone === null ? null : (storm.lastDone - reconnected) / 1000,
    p50_us: storm.hist.quantile(0.5), p99_us: storm.hist.quantile(0.99),
    first_frame_p50_us: opts.hist.quantile(0.5), first_frame_p99_us: opts.hist.quantile(0.99),
    loadgen_cpu_share: cpuMs(cpu0) / 1000 / secs,
  });
  const c = await countsRight(again.sockets, (cfg.countWait || 30) * 1000);
  mark('counted');
  out.wrong_counts = c.wrong;
  out.live_seq_gaps = storm.liveGaps;
  await sleep(300);
  stopping = true;
  out.unexpected_closes = closedUnexpectedly;
  return out;
}

async function idle() {
  const n = cfg.clients;
  const rooms = cfg.rooms || 1;
  const urlFor = (i) => (rooms > 1 ? `${cfg.url}-${i % rooms}` : cfg.url);
  const cpu0 = process.cpuUsage();
  mark('start');
  const t0 = performance.now();
  const sockets = [];
  let next = 0;
  const deadline = t0 + (cfg.connectTimeout || 120) * 1000;
  async function worker() {
    while (next < n && performance.now() < deadline) {
      const s = await rawConnect(urlFor(next++), { timeoutMs: (cfg.attemptTimeout || 30) * 1000 });
      if (s) sockets.push(s);
    }
  }
  await Promise.all(Array.from({ length: Math.min(cfg.concurrency || 50, n) }, worker));
  const secs = (performance.now() - t0) / 1000;
  mark('connected');
  const lgCpu = cpuMs(cpu0) / 1000;
  if (sockets.length < n) error(`only ${sockets.length}/${n} clients connected`);
  await settle(cfg.quietMs || 1000, (cfg.settleMax || 30) * 1000);
  await sleep((cfg.hold || 2) * 1000);
  mark('settled');
  await sleep(300);
  stopping = true;
  return {
    clients: sockets.length, connect_s: secs, handshakes_per_s: sockets.length / secs,
    loadgen_cpu_share: lgCpu / secs, unexpected_closes: closedUnexpectedly,
  };
}

const hardStop = setTimeout(() => {
  error(`loadgen hard time limit ${cfg.timeLimit || 300}s reached`);
  process.stdout.write(`RESULT ${JSON.stringify({ errors })}\n`);
  process.exit(2);
}, (cfg.timeLimit || 300) * 1000);

({ fanout, echo, idle, handshakes, storm, publish, recover })[cfg.mode]().then((result) => {
  result.errors = errors;
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
  clearTimeout(hardStop);
}, (e) => {
  error(`loadgen failed: ${e.stack}`);
  process.stdout.write(`RESULT ${JSON.stringify({ errors })}\n`, () => process.exit(1));
});

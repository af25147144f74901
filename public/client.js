// fastify-gateways browser client. Generated from lib/client/*.ts by `npm run build:client`: edit the sources,
// not this file. Specification: docs/protocol.md; usage: docs/client.md. MIT License.

// lib/client/core/errors.ts
var GatewayError = class extends Error {
  name = "GatewayError";
  code;
  constructor(code, message, details = {}) {
    super(message);
    this.code = code;
    if (details.status !== void 0) this.status = details.status;
    if (details.room !== void 0) this.room = details.room;
    if (details.ref !== void 0) this.ref = details.ref;
  }
};
function messageOf(err) {
  if (err instanceof Error) return err.message;
  return String(err);
}
async function httpError(response) {
  let message = `HTTP ${response.status}`;
  let code = `HTTP_${response.status}`;
  try {
    const body = await response.json();
    if (isRecord(body)) {
      if (typeof body.message === "string") message = body.message;
      if (typeof body.code === "string") code = body.code;
    }
  } catch {
  }
  return new GatewayError(code, message, { status: response.status });
}
function isRecord(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// lib/client/core/backoff.ts
var BACKOFF_DEFAULTS = { baseMs: 500, maxMs: 3e4, factor: 2, jitter: 0.5 };
function backoffDelay(attempt, options = {}, random = Math.random) {
  const { baseMs, maxMs, factor, jitter } = { ...BACKOFF_DEFAULTS, ...options };
  const ceiling = Math.min(maxMs, baseMs * Math.pow(factor, Math.max(0, attempt)));
  const spread = Math.min(Math.max(jitter, 0), 1);
  return ceiling * (1 - spread) + random() * ceiling * spread;
}
var Backoff = class {
  options;
  random;
  /** attempts counted since the last reset */
  attempt = 0;
  constructor(options = {}) {
    const { random, ...rest } = options;
    this.options = { ...BACKOFF_DEFAULTS, ...rest };
    this.random = random ?? Math.random;
  }
  /** the delay before the next attempt; counts the attempt */
  next() {
    return backoffDelay(this.attempt++, this.options, this.random);
  }
  reset() {
    this.attempt = 0;
  }
};

// lib/client/core/resume.ts
var ResumeTracker = class {
  #rooms = /* @__PURE__ */ new Map();
  /** how many recent ids per room are remembered for dedupe */
  window;
  /** the id of the most recent event accepted in any room, or null (informational: never a resume point) */
  latest = null;
  constructor(options = {}) {
    const window = options.window ?? 1024;
    if (!Number.isInteger(window) || window < 1) throw new TypeError("dedupeWindow must be a positive integer");
    this.window = window;
  }
  /** Records event `id` of `room`; false when it was already delivered (drop it). An event without id is accepted. */
  accept(room, id) {
    if (typeof id !== "string" || id === "") return true;
    let state = this.#rooms.get(room);
    if (state === void 0) {
      state = { lastId: null, seen: /* @__PURE__ */ new Set(), ring: [], next: 0 };
      this.#rooms.set(room, state);
    }
    if (state.seen.has(id)) return false;
    if (state.ring.length < this.window) {
      state.ring.push(id);
    } else {
      state.seen.delete(state.ring[state.next]);
      state.ring[state.next] = id;
      state.next = (state.next + 1) % this.window;
    }
    state.seen.add(id);
    state.lastId = id;
    this.latest = id;
    return true;
  }
  /** true when `id` of `room` was delivered (within the window) */
  seen(room, id) {
    return this.#rooms.get(room)?.seen.has(id) ?? false;
  }
  /** the last id seen in `room`, or null */
  lastId(room) {
    return this.#rooms.get(room)?.lastId ?? null;
  }
  /** The resume point of `room`: the last id seen in it, or null (nothing to resume from). */
  since(room) {
    return this.lastId(room);
  }
  forget(room) {
    this.#rooms.delete(room);
  }
};

// lib/client/core/sse-parser.ts
var LF = 10;
var CR = 13;
var COLON = 58;
var SPACE = 32;
var BOM = 65279;
var SseParser = class {
  #buffer = "";
  #data = [];
  #event = "";
  #skipLF = false;
  #started = false;
  /** the last `id:` value seen (an id with a NUL is ignored, as browsers do) */
  lastEventId = "";
  /** the last valid `retry:` value in ms */
  retry = void 0;
  feed(chunk) {
    const events = [];
    let text = chunk;
    if (this.#skipLF && text.length > 0) {
      if (text.charCodeAt(0) === LF) text = text.slice(1);
      this.#skipLF = false;
    }
    text = this.#buffer + text;
    if (!this.#started && text.length > 0) {
      this.#started = true;
      if (text.charCodeAt(0) === BOM) text = text.slice(1);
    }
    let pos = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== LF && c !== CR) continue;
      this.#line(text.slice(pos, i), events);
      if (c === CR) {
        if (i + 1 === text.length) this.#skipLF = true;
        else if (text.charCodeAt(i + 1) === LF) i++;
      }
      pos = i + 1;
    }
    this.#buffer = text.slice(pos);
    return events;
  }
  #line(line, events) {
    if (line === "") {
      if (this.#data.length > 0) {
        events.push({ id: this.lastEventId, event: this.#event === "" ? "message" : this.#event, data: this.#data.join("\n") });
      }
      this.#data = [];
      this.#event = "";
      return;
    }
    if (line.charCodeAt(0) === COLON) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === SPACE) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
    else if (field === "id") {
      if (!value.includes("\0")) this.lastEventId = value;
    } else if (field === "retry") {
      if (/^\d+$/.test(value)) this.retry = Number(value);
    }
  }
};

// lib/client/core/urls.ts
function baseHref() {
  return globalThis.location?.href;
}
function toSocketUrl(url, base = baseHref()) {
  const u = new URL(String(url), base);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new TypeError(`not a WebSocket URL: ${u.href}`);
  return u.href;
}
function toHttpUrl(url, base = baseHref()) {
  const u = new URL(String(url), base);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError(`not an HTTP URL: ${u.href}`);
  return u.href;
}
function withParams(url, params) {
  const u = new URL(url);
  for (const [key, value] of params) u.searchParams.append(key, value);
  return u.href;
}
async function resolveToken(token) {
  const value = typeof token === "function" ? await token() : token;
  if (value === void 0 || value === null || value === "") return null;
  if (typeof value !== "string") throw new TypeError("a token must be a string");
  return value;
}

// lib/client/core/emitter.ts
function report(err) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(err);
  else queueMicrotask(() => {
    throw err;
  });
}
var Emitter = class {
  #sets = /* @__PURE__ */ new Map();
  on(name, fn) {
    if (typeof fn !== "function") throw new TypeError(`${String(name)} listener must be a function`);
    let set = this.#sets.get(name);
    if (set === void 0) {
      set = /* @__PURE__ */ new Set();
      this.#sets.set(name, set);
    }
    const listeners = set;
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
    };
  }
  emit(name, ...args) {
    const set = this.#sets.get(name);
    if (set === void 0) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        report(err);
      }
    }
  }
};
var RoomEvents = class {
  #handlers = /* @__PURE__ */ new Map();
  #hooks = new Emitter();
  constructor(options) {
    if (typeof options.onGap === "function") this.onGap(options.onGap);
    if (typeof options.onStatus === "function") this.onStatus(options.onStatus);
    if (typeof options.onError === "function") this.onError(options.onError);
  }
  /**
   * Calls `handler(data, { room, event, id })` for each room event named `event` (`'*'`: every event), only those
   * of `options.room` when given. Returns a function that removes the handler.
   */
  on(event, handler, options = {}) {
    if (typeof event !== "string" || event === "") throw new TypeError("on(event, handler): event must be a non-empty string");
    if (typeof handler !== "function") throw new TypeError("on(event, handler): handler must be a function");
    let set = this.#handlers.get(event);
    if (set === void 0) {
      set = /* @__PURE__ */ new Set();
      this.#handlers.set(event, set);
    }
    const registrations = set;
    const entry = { handler, room: options.room ?? null };
    registrations.add(entry);
    return () => {
      registrations.delete(entry);
    };
  }
  /** Removes `handler` from `event` (every registration of it). */
  off(event, handler) {
    const set = this.#handlers.get(event);
    if (set === void 0) return;
    for (const entry of set) if (entry.handler === handler) set.delete(entry);
  }
  /** `fn({ room, since })` when a room's missed events could not all be recovered. */
  onGap(fn) {
    return this.#hooks.on("gap", fn);
  }
  /** `fn(status, detail)` on every status change. */
  onStatus(fn) {
    return this.#hooks.on("status", fn);
  }
  /** `fn(error)` for errors of the connection: a refused auth, a refused join or rejoin, errors without ref, a failed stream. */
  onError(fn) {
    return this.#hooks.on("error", fn);
  }
  /** the event names with handlers */
  get eventNames() {
    return [...this.#handlers.keys()];
  }
  emitGap(gap) {
    this.#hooks.emit("gap", gap);
  }
  emitStatus(status, detail) {
    this.#hooks.emit("status", status, detail);
  }
  emitError(error) {
    this.#hooks.emit("error", error);
  }
  /** Hands a room event to the handlers of its name and to the catch-all ones. */
  dispatch(event, data, meta) {
    for (const name of [event, "*"]) {
      const set = this.#handlers.get(name);
      if (set === void 0) continue;
      for (const entry of [...set]) {
        if (entry.room !== null && entry.room !== meta.room) continue;
        try {
          entry.handler(data, meta);
        } catch (err) {
          report(err);
        }
      }
    }
  }
};

// lib/client/core/socket.ts
var OPEN = 1;
function socketClass(given) {
  const candidate = given ?? globalThis.WebSocket;
  if (typeof candidate !== "function") throw new TypeError("no WebSocket implementation: pass options.WebSocket");
  return candidate;
}
function readFrame(raw) {
  let value;
  try {
    value = JSON.parse(typeof raw === "string" ? raw : String(raw));
  } catch {
    return null;
  }
  return isRecord(value) ? value : null;
}
function refOf(frame) {
  return typeof frame.ref === "string" || typeof frame.ref === "number" ? frame.ref : void 0;
}
function stringField(frame, key) {
  const value = frame[key];
  return typeof value === "string" ? value : void 0;
}

// lib/client/ws.ts
function connect(url, options = {}) {
  return new GatewayClient(url, options);
}
var GatewayClient = class extends RoomEvents {
  #url;
  #settings;
  #token;
  #WebSocket;
  #backoff;
  #tracker;
  #rooms = /* @__PURE__ */ new Map();
  #pending = /* @__PURE__ */ new Map();
  #outbox = [];
  #socket = null;
  #live = false;
  #status = "connecting";
  #refSeq = 0;
  #authRef = null;
  #retryTimer = void 0;
  #pingTimer = void 0;
  #awaitingPong = false;
  #closed = false;
  #closing = null;
  #opening = false;
  /** the server's connection id (`hello.conn`) */
  conn = null;
  /** the authenticated user id, null when anonymous, undefined before `hello` */
  user = void 0;
  constructor(url, options = {}) {
    super(options);
    this.#url = toSocketUrl(url);
    const auth = options.auth ?? "frame";
    if (auth !== "frame" && auth !== "query") throw new TypeError('auth must be "frame" or "query"');
    this.#settings = {
      auth,
      reconnect: options.reconnect ?? true,
      maxRetries: options.maxRetries ?? Infinity,
      ackTimeoutMs: options.ackTimeoutMs ?? 1e4,
      pingMs: options.pingMs ?? 25e3,
      maxQueue: options.maxQueue ?? 1e3,
      closeTimeoutMs: options.closeTimeoutMs ?? 3e3
    };
    this.#token = options.token;
    this.#WebSocket = socketClass(options.WebSocket);
    this.#backoff = new Backoff(options.backoff);
    this.#tracker = new ResumeTracker(options.dedupeWindow === void 0 ? {} : { window: options.dedupeWindow });
    void this.#open();
  }
  /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get status() {
    return this.#status;
  }
  /** the URL connected to (without token) */
  get url() {
    return this.#url;
  }
  /** Rooms asked for: `room -> { joined, lastId, recovered }` (`recovered`: of the last (re)join that sent `since`). */
  get rooms() {
    const out = /* @__PURE__ */ new Map();
    for (const [name, info] of this.#rooms) {
      out.set(name, { joined: info.joined, lastId: this.#tracker.lastId(name), recovered: info.recovered });
    }
    return out;
  }
  /** `recovered` of the last rejoin of `room` with `since`: true, false, or null (not resumed / unknown room). */
  recovered(room) {
    return this.#rooms.get(room)?.recovered ?? null;
  }
  /**
   * Joins `room` now or as soon as the connection is up; the room is rejoined after every reconnect. Resolves
   * `{ room, recovered }` at `joined`; rejects with the server's error (`FORBIDDEN`, ...). `since` resumes from an
   * id of that room (one seen earlier, e.g. kept across page loads).
   */
  join(room, options = {}) {
    if (this.#closed) return Promise.reject(new GatewayError("CLOSED", "the client is closed", { room }));
    let info = this.#rooms.get(room);
    if (info !== void 0) {
      if (info.joined) return Promise.resolve({ room, recovered: info.recovered });
    } else {
      info = { room, joined: false, everJoined: false, since: options.since ?? null, sentSince: null, recovered: null, ref: null, waiters: [] };
      this.#rooms.set(room, info);
      if (this.#live) this.#sendJoin(info);
    }
    const waiting = info;
    const joined = new Promise((resolve, reject) => {
      waiting.waiters.push({ resolve, reject });
    });
    joined.catch(() => {
    });
    return joined;
  }
  /** Leaves `room` (it is no longer rejoined). Resolves at `left`, or at once when not connected. */
  leave(room) {
    const info = this.#rooms.get(room);
    if (info === void 0) return Promise.resolve();
    this.#rooms.delete(room);
    this.#tracker.forget(room);
    const cancelled = new GatewayError("LEFT", `room ${room} was left before it was joined`, { room });
    for (const waiter of info.waiters.splice(0)) waiter.reject(cancelled);
    if (!this.#live || info.ref === null) return Promise.resolve();
    const left = this.#request({ op: "leave", room }, "leave").then(() => void 0);
    left.catch(() => {
    });
    return left;
  }
  /**
   * Publishes `data` as `event` to `room` (allowed only where the server's CLIENT_PUBLISH_ROOMS permits). Resolves
   * `{ id }` at the server's `ack`, rejects with its `error` (`FORBIDDEN`, `RATE_LIMITED`, ...), with `DISCONNECTED`
   * when the socket closed before the answer (the event may or may not be published), or `TIMEOUT`. While offline
   * the publish waits in a queue and is sent after the reconnect.
   */
  publish(room, event, data, options = {}) {
    return this.#request({ op: "publish", room, event, data: data === void 0 ? null : data }, "publish", options.timeoutMs).then((answer) => ({ id: (answer === null ? void 0 : stringField(answer, "id")) ?? "" }));
  }
  /**
   * Who is in `room` (a room this connection has joined): `{ room, members, users }`, `members` counting the
   * connections of every transport (ws, sse, rtc) on every instance and `users` the distinct authenticated user
   * ids among them. The `presence` op is an extension of the protocol (docs/protocol.md); a server without it
   * answers `BAD_MESSAGE`.
   */
  presence(room, options = {}) {
    return this.#request({ op: "presence", room }, "presence", options.timeoutMs).then((answer) => {
      const members = answer?.members;
      const users = answer?.users;
      return {
        room,
        members: typeof members === "number" ? members : 0,
        users: Array.isArray(users) ? users.filter((user) => typeof user === "string") : []
      };
    });
  }
  /**
   * Sends a fresh token (from the `token` function) for the same user on the live connection, without reconnecting;
   * resolves `{ exp }` (the new expiry in seconds since the epoch, null: none) at `refreshed`. The server asks for
   * this by itself before a token expires (`refresh` op, docs/protocol.md), and the client answers when `token` is a
   * function. Rooms the new token no longer allows are left by the server and reported to `onError` (`FORBIDDEN`).
   * A refused token ends the connection (`UNAUTHENTICATED`, close 1008); the client then reconnects.
   */
  async refresh(options = {}) {
    let token;
    try {
      token = await resolveToken(this.#token);
    } catch (err) {
      throw new GatewayError("TOKEN", `the token function failed: ${messageOf(err)}`);
    }
    if (token === null) throw new GatewayError("TOKEN", "no token to refresh with");
    const answer = await this.#request({ op: "refresh", token }, "refresh", options.timeoutMs);
    const exp = answer?.exp;
    return { exp: typeof exp === "number" ? exp : null };
  }
  /** Round trip to the server; resolves with the time in ms. */
  ping(options = {}) {
    const started = Date.now();
    return this.#request({ op: "ping" }, "ping", options.timeoutMs).then(() => Date.now() - started);
  }
  /** Closes for good (no reconnect); pending promises reject with `CLOSED`. Resolves once the socket is closed. */
  close() {
    if (this.#closing !== null) return this.#closing;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#stopPing();
    this.#failAll(new GatewayError("CLOSED", "the client was closed"));
    const socket = this.#socket;
    if (socket !== null && socket.readyState < 2) {
      this.#closing = new Promise((resolve) => {
        const done = (code, reason) => {
          clearTimeout(timer);
          this.#lost(socket, code);
          this.#setStatus("closed", { code, reason });
          resolve();
        };
        const timer = setTimeout(() => {
          done(1006, "close timed out");
        }, this.#settings.closeTimeoutMs);
        socket.onclose = (e) => {
          done(e.code, e.reason);
        };
      });
      socket.close(1e3, "client closed");
    } else {
      if (socket !== null) this.#lost(socket, 1e3);
      this.#setStatus("closed", {});
      this.#closing = Promise.resolve();
    }
    return this.#closing;
  }
  /** Drops the current socket now and reconnects (e.g. after the page came back online, or with a new token). */
  reconnect() {
    if (this.#closed || this.#opening) return;
    this.#backoff.reset();
    const socket = this.#socket;
    if (socket !== null) {
      this.#lost(socket, 4e3);
      try {
        socket.close();
      } catch {
      }
    }
    clearTimeout(this.#retryTimer);
    this.#setStatus("reconnecting", { attempt: 1, delayMs: 0, code: 4e3, reason: "reconnect requested" });
    void this.#open();
  }
  // ---- connection lifecycle ----
  async #open() {
    this.#retryTimer = void 0;
    if (this.#closed) return;
    let token;
    this.#opening = true;
    try {
      token = await resolveToken(this.#token);
    } catch (err) {
      this.emitError(new GatewayError("TOKEN", `the token function failed: ${messageOf(err)}`));
      this.#retry(0, "token unavailable");
      return;
    } finally {
      this.#opening = false;
    }
    if (this.#closed) return;
    const url = token !== null && this.#settings.auth === "query" ? withParams(this.#url, [["token", token]]) : this.#url;
    let socket;
    try {
      socket = new this.#WebSocket(url);
    } catch (err) {
      this.emitError(new GatewayError("NETWORK", `cannot open ${this.#url}: ${messageOf(err)}`));
      this.#retry(0, "cannot open");
      return;
    }
    this.#socket = socket;
    socket.onopen = () => {
      this.#onOpen(socket, token);
    };
    socket.onmessage = (e) => {
      this.#onMessage(socket, e.data);
    };
    socket.onclose = (e) => {
      this.#onClose(socket, e.code, e.reason);
    };
    socket.onerror = () => {
    };
  }
  #onOpen(socket, token) {
    if (socket !== this.#socket) return;
    this.#live = true;
    this.#awaitingPong = false;
    if (token !== null && this.#settings.auth === "frame") {
      this.#authRef = this.#nextRef();
      this.#send({ op: "auth", token, ref: this.#authRef });
    } else {
      this.#authRef = null;
    }
    for (const info of this.#rooms.values()) this.#sendJoin(info);
    for (const ref of this.#outbox.splice(0)) {
      const pending = this.#pending.get(ref);
      if (pending === void 0) continue;
      pending.sent = true;
      this.#sendText(pending.text);
    }
    this.#startPing();
  }
  #onMessage(socket, raw) {
    if (socket !== this.#socket) return;
    this.#awaitingPong = false;
    const frame = readFrame(raw);
    if (frame === null) return;
    switch (frame.op) {
      case "event":
        this.#onEvent(frame);
        return;
      case "hello":
        this.#onHello(frame);
        return;
      case "joined":
        this.#onJoined(frame);
        return;
      case "left":
        this.#onLeft(frame);
        return;
      case "ack":
      case "pong":
      case "presence":
      case "refreshed":
        this.#settle(refOf(frame), frame);
        return;
      case "refresh":
        this.#onRefreshAsked();
        return;
      case "error":
        this.#onErrorFrame(frame);
    }
  }
  #onClose(socket, code, reason) {
    if (socket !== this.#socket) return;
    this.#lost(socket, code);
    if (this.#closed) {
      this.#setStatus("closed", { code, reason });
      return;
    }
    const retries = this.#settings.reconnect ? this.#settings.maxRetries : 0;
    if (this.#backoff.attempt >= retries) {
      this.#closed = true;
      this.#failAll(new GatewayError("CLOSED", `connection closed (${code}${reason ? ` ${reason}` : ""}) and not reconnecting`));
      this.#closing = Promise.resolve();
      this.#setStatus("closed", { code, reason });
      return;
    }
    this.#retry(code, reason);
  }
  /** Rejects every pending join and request with `err` and empties the offline queue. */
  #failAll(err) {
    for (const info of this.#rooms.values()) for (const waiter of info.waiters.splice(0)) waiter.reject(err);
    for (const [ref, pending] of this.#pending) this.#finish(ref, pending, err);
    this.#outbox.length = 0;
  }
  /** The socket is gone: forget it, fail what waited on it. */
  #lost(socket, code) {
    if (socket !== this.#socket) return;
    socket.onopen = socket.onmessage = socket.onclose = null;
    this.#socket = null;
    this.#live = false;
    this.#stopPing();
    for (const info of this.#rooms.values()) {
      info.joined = false;
      info.ref = null;
    }
    const err = new GatewayError("DISCONNECTED", `the connection closed (${code}) before the server answered`);
    for (const [ref, pending] of this.#pending) {
      if (!pending.sent) continue;
      if (pending.kind === "leave") this.#finish(ref, pending, null);
      else this.#finish(ref, pending, err);
    }
  }
  /** Drops a socket that stopped answering without waiting for a close handshake, then reconnects. */
  #drop(code, reason) {
    const socket = this.#socket;
    if (socket === null) return;
    this.#onClose(socket, code, reason);
    try {
      socket.close();
    } catch {
    }
  }
  #retry(code, reason) {
    const attempt = this.#backoff.attempt + 1;
    const delayMs = this.#backoff.next();
    this.#setStatus("reconnecting", { attempt, delayMs, code, reason });
    this.#retryTimer = setTimeout(() => {
      void this.#open();
    }, delayMs);
  }
  #setStatus(status, detail) {
    if (status === this.#status && status !== "reconnecting") return;
    this.#status = status;
    this.emitStatus(status, detail);
  }
  #startPing() {
    this.#stopPing();
    const every = this.#settings.pingMs;
    if (!(every > 0)) return;
    this.#pingTimer = setInterval(() => {
      if (!this.#live) return;
      if (this.#awaitingPong) {
        this.#drop(4e3, "no answer to ping");
        return;
      }
      this.#awaitingPong = true;
      this.#send({ op: "ping" });
    }, every);
  }
  #stopPing() {
    clearInterval(this.#pingTimer);
    this.#pingTimer = void 0;
  }
  // ---- frames ----
  #onHello(frame) {
    this.conn = stringField(frame, "conn") ?? null;
    this.user = stringField(frame, "user") ?? null;
    if (this.#authRef !== null && frame.ref !== this.#authRef) return;
    this.#backoff.reset();
    this.#setStatus("open", { conn: this.conn, user: this.user });
  }
  #onEvent(frame) {
    const room = stringField(frame, "room");
    const event = stringField(frame, "event");
    if (room === void 0 || event === void 0 || !this.#rooms.has(room)) return;
    const id = stringField(frame, "id") ?? "";
    if (!this.#tracker.accept(room, id)) return;
    this.dispatch(event, frame.data, { room, event, id });
  }
  #onJoined(frame) {
    const info = this.#rooms.get(stringField(frame, "room") ?? "");
    if (info === void 0 || frame.ref !== void 0 && frame.ref !== info.ref) return;
    info.joined = true;
    info.everJoined = true;
    const recovered = typeof frame.recovered === "boolean" ? frame.recovered : null;
    info.recovered = recovered;
    const position = stringField(frame, "position");
    if (position !== void 0 && info.sentSince === null) info.since = position;
    for (const waiter of info.waiters.splice(0)) waiter.resolve({ room: info.room, recovered });
    if (recovered === false) this.emitGap({ room: info.room, since: info.sentSince });
  }
  /** `left`: the answer to our leave, or the server leaving a room by itself (a refreshed token lost it). */
  #onLeft(frame) {
    const ref = refOf(frame);
    if (typeof ref === "string" && this.#pending.has(ref)) {
      this.#settle(ref, frame);
      return;
    }
    const room = stringField(frame, "room");
    const info = room === void 0 ? void 0 : this.#rooms.get(room);
    if (info === void 0 || !info.joined) return;
    this.#rooms.delete(info.room);
    this.#tracker.forget(info.room);
    this.emitError(new GatewayError("FORBIDDEN", `the server left room ${info.room}: the token no longer allows it`, { room: info.room }));
  }
  /** The server asks for a fresh token before the current one expires: answer when the token option can give one. */
  #onRefreshAsked() {
    if (typeof this.#token !== "function") return;
    this.refresh().catch((err) => {
      if (err instanceof GatewayError && (err.code === "DISCONNECTED" || err.code === "CLOSED")) return;
      this.emitError(err instanceof GatewayError ? err : new GatewayError("TOKEN", messageOf(err)));
    });
  }
  #onErrorFrame(frame) {
    const ref = refOf(frame);
    const err = new GatewayError(String(frame.code ?? "ERROR"), String(frame.message ?? "error"), ref === void 0 ? {} : { ref });
    if (ref !== void 0) {
      for (const info of this.#rooms.values()) {
        if (info.ref !== ref) continue;
        this.#rooms.delete(info.room);
        this.#tracker.forget(info.room);
        err.room = info.room;
        for (const waiter of info.waiters.splice(0)) waiter.reject(err);
        this.emitError(err);
        return;
      }
      const pending = typeof ref === "string" ? this.#pending.get(ref) : void 0;
      if (pending !== void 0) {
        this.#finish(ref, pending, pending.kind === "leave" && err.code === "NOT_FOUND" ? null : err);
        return;
      }
    }
    this.emitError(err);
  }
  #sendJoin(info) {
    info.ref = this.#nextRef();
    const since = this.#tracker.lastId(info.room) ?? info.since;
    info.sentSince = since;
    this.#send(since === null ? { op: "join", room: info.room, ref: info.ref, position: true } : { op: "join", room: info.room, ref: info.ref, since, position: true });
  }
  #request(frame, kind, timeoutMs = this.#settings.ackTimeoutMs) {
    if (this.#closed) return Promise.reject(new GatewayError("CLOSED", "the client is closed"));
    const ref = this.#nextRef();
    let text;
    try {
      text = JSON.stringify({ ...frame, ref });
    } catch (err) {
      return Promise.reject(new GatewayError("BAD_MESSAGE", `cannot serialise the frame: ${messageOf(err)}`));
    }
    if (!this.#live && this.#outbox.length >= this.#settings.maxQueue) {
      return Promise.reject(new GatewayError("QUEUE_FULL", `${this.#settings.maxQueue} frames already wait for the connection`));
    }
    return new Promise((resolve, reject) => {
      const pending = { kind, text, resolve, reject, sent: false, timer: void 0 };
      if (timeoutMs > 0 && timeoutMs !== Infinity) {
        pending.timer = setTimeout(() => {
          this.#finish(ref, pending, new GatewayError("TIMEOUT", `no answer from the server within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.#pending.set(ref, pending);
      if (this.#live) {
        pending.sent = true;
        this.#sendText(text);
      } else {
        this.#outbox.push(ref);
      }
    });
  }
  #settle(ref, value) {
    if (typeof ref !== "string") return;
    const pending = this.#pending.get(ref);
    if (pending === void 0) return;
    this.#pending.delete(ref);
    clearTimeout(pending.timer);
    pending.resolve(value);
  }
  #finish(ref, pending, err) {
    if (this.#pending.get(ref) !== pending) return;
    this.#pending.delete(ref);
    clearTimeout(pending.timer);
    const queued = this.#outbox.indexOf(ref);
    if (queued !== -1) this.#outbox.splice(queued, 1);
    if (err === null) pending.resolve(null);
    else pending.reject(err);
  }
  #nextRef() {
    return `c${++this.#refSeq}`;
  }
  #send(frame) {
    this.#sendText(JSON.stringify(frame));
  }
  #sendText(text) {
    const socket = this.#socket;
    if (socket !== null && socket.readyState === OPEN) socket.send(text);
  }
};

// lib/client/sse.ts
var SOURCE_CLOSED = 2;
var PERMANENT_STATUSES = /* @__PURE__ */ new Set([400, 403, 404, 405, 406]);
function subscribe(url, rooms, options = {}) {
  return new SseSubscription(url, rooms, options);
}
var SseSubscription = class extends RoomEvents {
  #url;
  #rooms;
  #options;
  #transport;
  #tracker;
  #backoff;
  #status = "connecting";
  #lastEventId;
  #retryMs = null;
  #source = null;
  #abort = null;
  #listening = /* @__PURE__ */ new Set();
  #timer = void 0;
  #closed = false;
  constructor(url, rooms, options = {}) {
    super(options);
    const list = [...new Set(Array.isArray(rooms) ? rooms : [rooms])];
    if (list.length === 0) throw new TypeError("subscribe(url, rooms): at least one room");
    this.#url = toHttpUrl(url);
    this.#rooms = list;
    this.#options = options;
    const transport = options.transport ?? "eventsource";
    if (transport !== "eventsource" && transport !== "fetch") throw new TypeError('transport must be "eventsource" or "fetch"');
    this.#transport = transport;
    if (transport === "eventsource" && typeof (options.EventSource ?? globalThis.EventSource) !== "function") {
      throw new TypeError('no EventSource implementation: pass options.EventSource or use transport "fetch"');
    }
    this.#tracker = new ResumeTracker(options.dedupeWindow === void 0 ? {} : { window: options.dedupeWindow });
    this.#backoff = new Backoff(options.backoff);
    this.#lastEventId = options.lastEventId ?? null;
    void this.#open();
  }
  get status() {
    return this.#status;
  }
  get rooms() {
    return [...this.#rooms];
  }
  /** the id of the last event received: pass it as `lastEventId` to a later subscription of the same rooms to resume */
  get lastEventId() {
    return this.#lastEventId;
  }
  on(event, handler, options) {
    if (event === "*" && this.#transport === "eventsource") {
      throw new TypeError('EventSource dispatches named events only: on("*") needs subscribe(url, rooms, { transport: "fetch" })');
    }
    const off = super.on(event, handler, options);
    if (this.#source !== null) this.#listen(this.#source, event);
    return off;
  }
  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#source?.close();
    this.#source = null;
    this.#abort?.abort();
    this.#abort = null;
    this.#setStatus("closed", {});
  }
  #streamUrl(token, withResumeQuery) {
    const params = this.#rooms.map((room) => ["room", room]);
    if (token !== null) params.push(["token", token]);
    if (withResumeQuery && this.#lastEventId !== null) params.push(["lastEventId", this.#lastEventId]);
    return withParams(this.#url, params);
  }
  async #open() {
    this.#timer = void 0;
    if (this.#closed) return;
    let token;
    try {
      token = await resolveToken(this.#options.token);
    } catch (err) {
      this.emitError(new GatewayError("TOKEN", `the token function failed: ${messageOf(err)}`));
      this.#retry();
      return;
    }
    if (this.#closed) return;
    if (this.#transport === "fetch") await this.#readStream(token);
    else this.#openEventSource(token);
  }
  #openEventSource(token) {
    const EventSourceImpl = this.#options.EventSource ?? globalThis.EventSource;
    const url = this.#streamUrl(token, true);
    const source = new EventSourceImpl(url, { withCredentials: this.#options.withCredentials === true });
    this.#source = source;
    this.#listening = /* @__PURE__ */ new Set();
    source.onopen = () => {
      if (source !== this.#source) return;
      this.#backoff.reset();
      this.#setStatus("open", {});
    };
    source.onerror = () => {
      if (source !== this.#source) return;
      if (source.readyState === SOURCE_CLOSED) {
        this.#source = null;
        source.close();
        void this.#diagnose(url);
      } else {
        this.#setStatus("reconnecting", {});
      }
    };
    source.addEventListener("gap", (e) => {
      if (source === this.#source) this.#onGapEvent(textOf(e.data), textOf(e.lastEventId));
    });
    source.addEventListener("expired", (e) => {
      if (source !== this.#source) return;
      this.#source = null;
      source.close();
      this.#onExpired(textOf(e.data));
      this.#failed(null);
    });
    for (const name of this.eventNames) this.#listen(source, name);
  }
  #listen(source, name) {
    if (name === "*" || name === "gap" || name === "expired" || this.#listening.has(name)) return;
    this.#listening.add(name);
    source.addEventListener(name, (e) => {
      if (source === this.#source) this.#onMessage(name, textOf(e.data), textOf(e.lastEventId));
    });
  }
  async #diagnose(url) {
    let err = null;
    const controller = new AbortController();
    try {
      const response = await this.#fetch(url, { headers: { accept: "text/event-stream" }, signal: controller.signal });
      if (response.ok) controller.abort();
      else err = await httpError(response);
    } catch (e) {
      err = new GatewayError("NETWORK", `the stream failed: ${messageOf(e)}`);
    }
    this.#failed(err);
  }
  /** A stream could not start (`err` null: it did, then ended). Retries unless the refusal is permanent. */
  #failed(err) {
    if (this.#closed) return;
    if (err !== null) this.emitError(err);
    const status = err?.status;
    const permanent = status !== void 0 && PERMANENT_STATUSES.has(status) || status === 401 && typeof this.#options.token !== "function";
    if (this.#options.reconnect === false || permanent) {
      this.#closed = true;
      this.#setStatus("closed", { error: err });
      return;
    }
    this.#retry();
  }
  #retry() {
    const attempt = this.#backoff.attempt + 1;
    const delayMs = Math.max(this.#retryMs ?? 0, this.#backoff.next());
    this.#setStatus("reconnecting", { attempt, delayMs });
    this.#timer = setTimeout(() => {
      void this.#open();
    }, delayMs);
  }
  #fetch(url, init) {
    const fetchImpl = this.#options.fetch ?? globalThis.fetch;
    return fetchImpl(url, { ...init, credentials: this.#options.withCredentials === true ? "include" : "same-origin" });
  }
  async #readStream(token) {
    const headers = { accept: "text/event-stream" };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (this.#lastEventId !== null) headers["last-event-id"] = this.#lastEventId;
    const controller = new AbortController();
    this.#abort = controller;
    let response;
    try {
      response = await this.#fetch(this.#streamUrl(null, false), { headers, signal: controller.signal });
    } catch (e) {
      if (controller.signal.aborted) return;
      this.#failed(new GatewayError("NETWORK", `the stream failed: ${messageOf(e)}`));
      return;
    }
    const type = response.headers.get("content-type") ?? "";
    if (!response.ok || !type.startsWith("text/event-stream")) {
      const err = response.ok ? new GatewayError("BAD_RESPONSE", `expected text/event-stream, got ${type || "nothing"}`, { status: response.status }) : await httpError(response);
      this.#failed(err);
      return;
    }
    this.#backoff.reset();
    this.#setStatus("open", {});
    const parser = new SseParser();
    const decoder = new TextDecoder();
    try {
      const reader = response.body?.getReader();
      for (; ; ) {
        if (reader === void 0) break;
        const { done, value } = await reader.read();
        if (done) break;
        for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
          if (controller.signal.aborted) return;
          if (event.event === "gap") this.#onGapEvent(event.data, event.id);
          else if (event.event === "expired") this.#onExpired(event.data);
          else this.#onMessage(event.event, event.data, event.id);
        }
        if (parser.retry !== void 0) this.#retryMs = parser.retry;
      }
    } catch {
      if (controller.signal.aborted) return;
    }
    if (controller.signal.aborted) return;
    this.#abort = null;
    this.#failed(null);
  }
  #onMessage(event, text, id) {
    if (id !== "") this.#lastEventId = id;
    let payload;
    try {
      payload = JSON.parse(text);
    } catch {
      this.emitError(new GatewayError("BAD_MESSAGE", `event ${event} carries data that is not JSON`));
      return;
    }
    const room = isRecord(payload) && typeof payload.room === "string" ? payload.room : "";
    if (!this.#tracker.accept(room, id)) return;
    this.dispatch(event, isRecord(payload) ? payload.data : void 0, { room, event, id });
  }
  #onGapEvent(text, id) {
    let room = null;
    try {
      const payload = JSON.parse(text);
      if (isRecord(payload) && typeof payload.room === "string") room = payload.room;
    } catch {
    }
    this.emitGap({ room, since: this.#lastEventId });
    if (id !== "") this.#lastEventId = id;
  }
  /**
   * `event: expired`: the stream's token expired and the server ends the stream (docs/protocol.md). Reported as
   * `UNAUTHENTICATED`; the stream starts over, with a fresh token when `token` is a function (a fixed token is then
   * refused with 401, which stops the subscription).
   */
  #onExpired(text) {
    let message = "token expired";
    try {
      const payload = JSON.parse(text);
      if (isRecord(payload) && typeof payload.message === "string") message = payload.message;
    } catch {
    }
    this.emitError(new GatewayError("UNAUTHENTICATED", message));
  }
  #setStatus(status, detail) {
    if (status === this.#status && status !== "reconnecting") return;
    this.#status = status;
    this.emitStatus(status, detail);
  }
};
function textOf(value) {
  if (typeof value === "string") return value;
  return value === void 0 || value === null ? "" : String(value);
}

// lib/client/rtc.ts
async function fetchIceServers(url, options = {}) {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  try {
    const headers = typeof options.token === "string" && options.token !== "" ? { authorization: `Bearer ${options.token}` } : {};
    const response = await fetchImpl(toHttpUrl(url), { headers });
    if (!response.ok) return [];
    const body = await response.json();
    const list = Array.isArray(body) ? body : isRecord(body) && Array.isArray(body.iceServers) ? body.iceServers : [];
    return list.filter((server) => isRecord(server) && (typeof server.urls === "string" || Array.isArray(server.urls)));
  } catch {
    return [];
  }
}
function joinRtc(url, room, options = {}) {
  return new RtcSession(url, room, options);
}
var RtcPeer = class {
  id;
  pc;
  /** the default data channel (label `dataChannel` of the session) once it exists */
  channel = null;
  /** every data channel with this peer, by label */
  channels = /* @__PURE__ */ new Map();
  /** remote streams seen on this peer */
  streams = /* @__PURE__ */ new Set();
  /** the polite side gives way when both offer at once ("perfect negotiation"); the newcomer is impolite */
  polite;
  #closed = false;
  constructor(id, pc, polite) {
    this.id = id;
    this.pc = pc;
    this.polite = polite;
  }
  /** true once the connection with this peer was closed */
  get closed() {
    return this.#closed;
  }
  /** Sends on the default data channel; false when it is not open. */
  send(data) {
    if (this.channel === null || this.channel.readyState !== "open") return false;
    sendOn(this.channel, data);
    return true;
  }
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const channel of this.channels.values()) {
      try {
        channel.close();
      } catch {
      }
    }
    this.pc.close();
  }
};
function sendOn(channel, data) {
  channel.send.call(channel, data);
}
var RtcSession = class {
  #url;
  #options;
  #dataChannel;
  #PeerConnection;
  #WebSocket;
  #events = new Emitter();
  #negotiation = /* @__PURE__ */ new WeakMap();
  #streams = [];
  #joinRef = "j1";
  #ready;
  #socket = null;
  #iceServers = [];
  #chain = Promise.resolve();
  #closed = false;
  room;
  /** my peer id in the room, once joined */
  peerId = null;
  /** the user id of the signaling connection (hello), null when anonymous, undefined before hello */
  user = void 0;
  /** remote peers by id */
  peers = /* @__PURE__ */ new Map();
  /** resolves `{ peer, peers }` once joined; rejects with the server's error (ROOM_FULL, FORBIDDEN, ...) */
  ready;
  constructor(url, room, options = {}) {
    this.room = room;
    this.#url = toSocketUrl(url);
    this.#options = options;
    this.#dataChannel = options.dataChannel ?? "data";
    const PeerConnection = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
    if (typeof PeerConnection !== "function") throw new TypeError("no RTCPeerConnection implementation");
    this.#PeerConnection = PeerConnection;
    this.#WebSocket = socketClass(options.WebSocket);
    if (options.stream) this.#streams.push(options.stream);
    let deferred;
    this.ready = new Promise((resolve, reject) => {
      deferred = { resolve, reject };
    });
    this.#ready = deferred;
    this.ready.catch(() => {
    });
    void this.#start();
  }
  /** `fn` for session events (see the class comment); returns a function that removes it */
  on(name, fn) {
    if (typeof fn !== "function") throw new TypeError("on(name, fn): fn must be a function");
    return this.#events.on(name, fn);
  }
  /** Sends `data` on the default data channel of every peer whose channel is open; returns how many. */
  send(data) {
    let count = 0;
    for (const peer of this.peers.values()) if (peer.send(data)) count++;
    return count;
  }
  /** Adds a local stream's tracks to every peer (now and later ones); renegotiates the existing connections. */
  addStream(stream) {
    if (this.#streams.includes(stream)) return;
    this.#streams.push(stream);
    for (const peer of this.peers.values()) {
      if (!this.#state(peer).tracksAdded) continue;
      for (const track of stream.getTracks()) peer.pc.addTrack(track, stream);
    }
  }
  /** Stops sending a local stream's tracks to every peer. */
  removeStream(stream) {
    const index = this.#streams.indexOf(stream);
    if (index === -1) return;
    this.#streams.splice(index, 1);
    const tracks = new Set(stream.getTracks());
    for (const peer of this.peers.values()) {
      for (const sender of peer.pc.getSenders()) if (tracks.has(sender.track)) peer.pc.removeTrack(sender);
    }
  }
  /** Leaves the room: closes every peer connection and the signaling socket. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const peer of [...this.peers.values()]) this.#removePeer(peer, false);
    const socket = this.#socket;
    if (socket !== null && socket.readyState === OPEN) {
      socket.send(JSON.stringify({ op: "leave", room: this.room }));
      socket.close(1e3, "left");
    } else if (socket !== null) {
      try {
        socket.close();
      } catch {
      }
    }
    this.#ready.reject(new GatewayError("CLOSED", "the rtc session was closed"));
  }
  leave() {
    this.close();
  }
  async #start() {
    let token;
    try {
      token = await resolveToken(this.#options.token);
    } catch (err) {
      this.#fail(new GatewayError("TOKEN", `the token function failed: ${messageOf(err)}`));
      return;
    }
    const iceServers = this.#options.iceServers !== void 0 ? Promise.resolve(this.#options.iceServers) : fetchIceServers(
      this.#options.iceServersUrl ?? `${toHttpUrl(this.#url).replace(/[?#].*$/, "").replace(/\/$/, "")}/ice-servers`,
      { token, ...this.#options.fetch === void 0 ? {} : { fetch: this.#options.fetch } }
    );
    if (this.#closed) return;
    const auth = this.#options.auth ?? "frame";
    const url = token !== null && auth === "query" ? withParams(this.#url, [["token", token]]) : this.#url;
    const socket = new this.#WebSocket(url);
    this.#socket = socket;
    socket.onopen = () => {
      if (token !== null && auth === "frame") socket.send(JSON.stringify({ op: "auth", token, ref: "auth" }));
      socket.send(JSON.stringify({ op: "join", room: this.room, ref: this.#joinRef }));
    };
    socket.onmessage = (e) => {
      const frame = readFrame(e.data);
      if (frame === null) return;
      this.#chain = this.#chain.then(() => this.#handle(frame, iceServers)).catch((err) => {
        this.#events.emit("error", err instanceof GatewayError ? err : new GatewayError("RTC", messageOf(err)));
      });
    };
    socket.onclose = (e) => {
      this.#socket = null;
      this.#ready.reject(new GatewayError("DISCONNECTED", `the signaling connection closed (${e.code})`));
      this.#events.emit("close", { code: e.code, reason: e.reason });
    };
    socket.onerror = () => {
    };
  }
  #fail(err) {
    this.#ready.reject(err);
    this.#events.emit("error", err);
  }
  async #handle(frame, iceServers) {
    if (this.#closed) return;
    switch (frame.op) {
      case "hello":
        this.user = stringField(frame, "user") ?? null;
        return;
      case "joined": {
        const peer = stringField(frame, "peer");
        if (frame.room !== this.room || peer === void 0) return;
        this.#iceServers = await iceServers;
        this.peerId = peer;
        const peers = Array.isArray(frame.peers) ? frame.peers.filter((id) => typeof id === "string") : [];
        for (const id of peers) if (!this.peers.has(id)) this.#createPeer(id, true);
        this.#ready.resolve({ peer, peers });
        this.#events.emit("joined", { peer, peers });
        return;
      }
      case "signal": {
        const from = stringField(frame, "from");
        if (frame.room !== this.room || from === void 0 || this.peerId === null) return;
        const data = isRecord(frame.data) ? frame.data : {};
        let peer = this.peers.get(from);
        if (peer === void 0) {
          if (!isRecord(data.description) || data.description.type !== "offer") return;
          peer = this.#createPeer(from, false);
        }
        await this.#signal(peer, data);
        return;
      }
      case "refresh": {
        if (typeof this.#options.token !== "function") return;
        let token;
        try {
          token = await resolveToken(this.#options.token);
        } catch (err) {
          this.#events.emit("error", new GatewayError("TOKEN", `the token function failed: ${messageOf(err)}`));
          return;
        }
        const socket = this.#socket;
        if (token !== null && socket !== null && socket.readyState === OPEN) socket.send(JSON.stringify({ op: "refresh", token }));
        return;
      }
      case "left":
        if (frame.room !== this.room || refOf(frame) !== void 0) return;
        this.#fail(new GatewayError("FORBIDDEN", `the server left room ${this.room}: the token no longer allows it`, { room: this.room }));
        this.close();
        return;
      case "peer-left": {
        const peer = this.peers.get(stringField(frame, "peer") ?? "");
        if (peer !== void 0) this.#removePeer(peer, true);
        return;
      }
      case "event":
        this.#events.emit("event", frame.data, { room: stringField(frame, "room") ?? "", event: stringField(frame, "event") ?? "", id: stringField(frame, "id") ?? "" });
        return;
      case "error": {
        const ref = refOf(frame);
        const err = new GatewayError(String(frame.code ?? "ERROR"), String(frame.message ?? "error"), ref === void 0 ? {} : { ref });
        if (ref === this.#joinRef) {
          this.#fail(err);
          this.close();
        } else {
          this.#events.emit("error", err);
        }
      }
    }
  }
  #state(peer) {
    let state = this.#negotiation.get(peer);
    if (state === void 0) {
      state = { makingOffer: false, ignoreOffer: false, tracksAdded: false, candidates: [] };
      this.#negotiation.set(peer, state);
    }
    return state;
  }
  #createPeer(id, initiator) {
    const pc = new this.#PeerConnection({ iceServers: this.#iceServers });
    const peer = new RtcPeer(id, pc, !initiator);
    this.peers.set(id, peer);
    pc.onicecandidate = (e) => {
      if (e.candidate) this.#sendSignal(id, { candidate: typeof e.candidate.toJSON === "function" ? e.candidate.toJSON() : e.candidate });
    };
    pc.onnegotiationneeded = () => {
      void this.#negotiate(peer);
    };
    pc.ontrack = (e) => {
      const streams = e.streams ?? [];
      for (const stream of streams) peer.streams.add(stream);
      this.#events.emit("track", e.track, streams, peer);
    };
    pc.ondatachannel = (e) => {
      this.#setupChannel(peer, e.channel);
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      this.#events.emit("state", state, peer);
      if (state === "failed" && this.peers.get(id) === peer) this.#removePeer(peer, true);
    };
    this.#events.emit("peer", peer);
    if (initiator) {
      const label = this.#dataChannel;
      if (typeof label === "string" && label !== "") this.#setupChannel(peer, pc.createDataChannel(label, this.#options.channelOptions));
      this.#addTracks(peer);
    }
    return peer;
  }
  #addTracks(peer) {
    this.#state(peer).tracksAdded = true;
    for (const stream of this.#streams) for (const track of stream.getTracks()) peer.pc.addTrack(track, stream);
  }
  #setupChannel(peer, channel) {
    peer.channels.set(channel.label, channel);
    if (channel.label === this.#dataChannel) peer.channel = channel;
    channel.onopen = () => {
      this.#events.emit("channel", channel, peer);
    };
    channel.onmessage = (e) => {
      this.#events.emit("message", e.data, peer, channel);
    };
    channel.onclose = () => {
      if (peer.channels.get(channel.label) === channel) peer.channels.delete(channel.label);
      if (peer.channel === channel) peer.channel = null;
    };
  }
  async #negotiate(peer) {
    const pc = peer.pc;
    const state = this.#state(peer);
    try {
      state.makingOffer = true;
      await pc.setLocalDescription();
      this.#sendDescription(peer, pc.localDescription);
    } catch (err) {
      if (!peer.closed) this.#events.emit("error", new GatewayError("RTC", `negotiation with ${peer.id} failed: ${messageOf(err)}`));
    } finally {
      state.makingOffer = false;
    }
  }
  async #signal(peer, data) {
    const pc = peer.pc;
    const state = this.#state(peer);
    if (isRecord(data.description)) {
      const description = data.description;
      const collision = description.type === "offer" && (state.makingOffer || pc.signalingState !== "stable");
      state.ignoreOffer = !peer.polite && collision;
      if (state.ignoreOffer) return;
      await pc.setRemoteDescription(description);
      for (const candidate of state.candidates.splice(0)) await this.#addCandidate(peer, candidate);
      if (description.type === "offer") {
        if (!state.tracksAdded) this.#addTracks(peer);
        await pc.setLocalDescription();
        this.#sendDescription(peer, pc.localDescription);
      }
    } else if (isRecord(data.candidate)) {
      const candidate = data.candidate;
      if (pc.remoteDescription === null || pc.remoteDescription === void 0) state.candidates.push(candidate);
      else await this.#addCandidate(peer, candidate);
    }
  }
  async #addCandidate(peer, candidate) {
    try {
      await peer.pc.addIceCandidate(candidate);
    } catch (err) {
      if (!this.#state(peer).ignoreOffer) throw err;
    }
  }
  #sendDescription(peer, description) {
    if (description === null || peer.closed) return;
    this.#sendSignal(peer.id, { description: { type: description.type, sdp: description.sdp } });
  }
  #sendSignal(to, data) {
    const socket = this.#socket;
    if (socket !== null && socket.readyState === OPEN) socket.send(JSON.stringify({ op: "signal", room: this.room, to, data }));
  }
  #removePeer(peer, announce) {
    if (this.peers.get(peer.id) === peer) this.peers.delete(peer.id);
    peer.close();
    if (announce) this.#events.emit("peer-left", peer);
  }
};
export {
  Backoff,
  GatewayClient,
  GatewayError,
  ResumeTracker,
  RtcPeer,
  RtcSession,
  SseParser,
  SseSubscription,
  backoffDelay,
  connect,
  fetchIceServers,
  joinRtc,
  subscribe,
  toHttpUrl,
  toSocketUrl
};

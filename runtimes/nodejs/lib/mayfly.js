/*
 * mayfly: the platform's API from inside a function (docs/state.md).
 *
 *     const mayfly = require('mayfly');
 *     const cart = mayfly.kv('cart');
 *     await cart.put('alice', { items: 3 }, { ttl: 3600 });
 *     await cart.get('alice');                  // { items: 3 }
 *     await cart.incr('visits');                // 1, 2, ...
 *     await mayfly.invoke('resize', { key });   // another function's result
 *     await mayfly.publish('orders', 'shipped', { attributes: { kind: 'order' } });
 *
 * It speaks HTTP to MAYFLY_API (http://127.0.0.1:9001/mayfly/v1, the
 * instance's own listener) on kept-alive connections, with the function
 * itself as the identity: what it may reach is its `permissions`. Every
 * call returns a promise. Values are bytes: a Buffer is stored as is, a
 * string as UTF-8 text, anything else as JSON, and get() gives each back
 * as it was put.
 */
'use strict';

const http = require('http');

// Below the server's 60 s keep-alive: a socket is never reused just as the
// server closes it.
const agent = new http.Agent({ keepAlive: true, maxSockets: 8, timeout: 50000 });

class MayflyError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.name = 'MayflyError';
    this.status = status;
    this.code = code;
    this.detail = message;
  }
}

class FunctionError extends Error {
  constructor(errorType, document) {
    super(document && document.errorMessage !== undefined ? document.errorMessage : String(document));
    this.name = 'FunctionError';
    this.errorType = errorType;
    this.document = document;
  }
}

function base() {
  const u = new URL(process.env.MAYFLY_API || 'http://127.0.0.1:9001/mayfly/v1');
  return { host: u.hostname, port: Number(u.port) || 80, prefix: u.pathname.replace(/\/$/, '') };
}

function request(method, path, body, headers, retried) {
  const { host, port, prefix } = base();
  return new Promise((resolve, reject) => {
    // The call making the request (the runtime keeps it under Lambda's
    // symbol): on an instance serving many calls at once the server
    // attributes the request to that call (docs/concurrency.md).
    const call = global[Symbol.for('aws.lambda.runtime.requestId')];
    const req = http.request({ host, port, method, path: prefix + path, agent,
                               headers: Object.assign({}, headers || {},
                                 body ? { 'Content-Length': body.length } : {},
                                 call ? { 'Lambda-Runtime-Aws-Request-Id': call } : {}) }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
                                    body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', (e) => {
      // A kept socket the server closed while idle fails before any answer:
      // the request was not taken, so it goes again once.
      if (!retried && req.reusedSocket && e.code === 'ECONNRESET') {
        request(method, path, body, headers, true).then(resolve, reject);
      } else {
        reject(new MayflyError(0, 'unreachable', `${method} ${path}: ${e.message}`));
      }
    });
    if (body) req.write(body);
    req.end();
  });
}

function fail(res) {
  let code = '', message = res.body.toString();
  try {
    const e = JSON.parse(res.body).error;
    code = e.code || '';
    message = e.message || '';
  } catch (_) { /* not JSON: the text as it came */ }
  throw new MayflyError(res.status, code, message);
}

function encode(value) {
  if (Buffer.isBuffer(value)) return [value, 'application/octet-stream'];
  if (value instanceof Uint8Array) return [Buffer.from(value), 'application/octet-stream'];
  if (typeof value === 'string') return [Buffer.from(value, 'utf8'), 'text/plain; charset=utf-8'];
  return [Buffer.from(JSON.stringify(value === undefined ? null : value)), 'application/json'];
}

function decode(buf, contentType) {
  const ct = String(contentType || '').split(';')[0].trim().toLowerCase();
  if (ct === 'application/json') return JSON.parse(buf.toString('utf8'));
  if (ct === 'text/plain') return buf.toString('utf8');
  return buf;
}

const seg = encodeURIComponent;

class KV {
  constructor(store) {
    this.store = store;
    this.path = `/kv/${seg(store)}`;
  }

  /* {value, version, expires}, or null when absent (or expired). */
  async item(key) {
    const res = await request('GET', `${this.path}/${seg(key)}`);
    if (res.status === 404) return null;
    if (res.status !== 200) fail(res);
    const etag = String(res.headers.etag || '').replace(/"/g, '');
    return { value: decode(res.body, res.headers['content-type']),
             version: /^\d+$/.test(etag) ? Number(etag) : null,
             expires: res.headers['x-mayfly-expires'] || null };
  }

  async get(key, dflt = null) {
    const it = await this.item(key);
    return it === null ? dflt : it.value;
  }

  /* Stores value; resolves to its new version. opts: ttl (s), ifVersion,
   * ifAbsent: the write happens only if the key is still at that version
   * (or absent), else it rejects with status 412. */
  async put(key, value, opts = {}) {
    const [body, ctype] = encode(value);
    const headers = { 'Content-Type': ctype };
    if (opts.ttl !== undefined) headers['X-Mayfly-TTL'] = String(Math.trunc(opts.ttl));
    if (opts.ifVersion !== undefined) headers['If-Match'] = `"${opts.ifVersion}"`;
    if (opts.ifAbsent) headers['If-None-Match'] = '*';
    const res = await request('PUT', `${this.path}/${seg(key)}`, body, headers);
    if (res.status !== 200) fail(res);
    return JSON.parse(res.body).version;
  }

  /* Adds by to the key's integer (0 when absent), atomically. */
  async incr(key, by = 1, opts = {}) {
    const doc = { by };
    if (opts.ttl !== undefined) doc.ttl = opts.ttl;
    const res = await request('POST', `${this.path}/${seg(key)}/incr`,
                              Buffer.from(JSON.stringify(doc)),
                              { 'Content-Type': 'application/json' });
    if (res.status !== 200) fail(res);
    return JSON.parse(res.body).value;
  }

  /* true when the key was there and is gone, false when it was absent. */
  async delete(key, opts = {}) {
    const headers = opts.ifVersion !== undefined ? { 'If-Match': `"${opts.ifVersion}"` } : {};
    const res = await request('DELETE', `${this.path}/${seg(key)}`, null, headers);
    if (res.status === 404) return false;
    if (res.status !== 204) fail(res);
    return true;
  }

  /* Every {key, version, size, expires} under prefix, in key order. */
  async list(prefix = '', limit = Infinity) {
    const out = [];
    let cursor = null;
    while (out.length < limit) {
      const q = new URLSearchParams({ prefix, limit: String(Math.min(1000, limit - out.length)) });
      if (cursor) q.set('cursor', cursor);
      const res = await request('GET', `${this.path}?${q}`);
      if (res.status !== 200) fail(res);
      const page = JSON.parse(res.body);
      out.push(...page.keys);
      cursor = page.next;
      if (!cursor) break;
    }
    return out.slice(0, limit);
  }

  /* {key: value} of those present, read at one point in time. */
  async getMany(keys) {
    const data = await this.batch({ get: keys });
    const out = {};
    for (const it of data.items) {
      if (it.found) out[it.key] = decode(Buffer.from(it.value_base64, 'base64'), it.content_type);
    }
    return out;
  }

  /* All or nothing: [{op:'put', key, value, if_version?, if_absent?, ttl?},
   * {op:'delete', key, if_version?}] → the new versions (null for deletes). */
  async writeMany(ops) {
    const items = ops.map((op) => {
      const item = Object.assign({}, op);
      if (item.op === 'put') {
        const [body, ctype] = encode(item.value);
        delete item.value;
        item.value_base64 = body.toString('base64');
        item.content_type = ctype;
      }
      return item;
    });
    return (await this.batch({ ops: items })).versions;
  }

  async batch(doc) {
    const res = await request('POST', `${this.path}/_batch`, Buffer.from(JSON.stringify(doc)),
                              { 'Content-Type': 'application/json' });
    if (res.status !== 200) fail(res);
    return JSON.parse(res.body);
  }
}

/* Calls another function (permission invoke:NAME). Synchronously: its
 * result (decoded when JSON), or a FunctionError. Asynchronously
 * ({async: true}): the queued event's request id. */
async function invoke(name, event = null, opts = {}) {
  const body = Buffer.isBuffer(event) ? event : Buffer.from(JSON.stringify(event));
  const headers = { 'Content-Type': 'application/json' };
  if (opts.async) headers['X-Mayfly-Invocation-Type'] = 'Event';
  const res = await request('POST', `/functions/${seg(name)}/invoke`, body, headers);
  if (opts.async) {
    if (res.status !== 202) fail(res);
    return JSON.parse(res.body).request_id;
  }
  if (res.status !== 200) fail(res);
  let doc;
  try {
    doc = JSON.parse(res.body);
  } catch (_) {
    doc = res.body;
  }
  if (res.headers['x-mayfly-function-error']) {
    throw new FunctionError((doc && doc.errorType) || 'Unhandled', doc);
  }
  return doc;
}

/* Publishes message to topic (permission topic:TOPIC): every subscriber
 * whose filter policy the attributes pass gets it as SNS's Lambda event.
 * message is text (anything else is sent as its JSON); opts.subject, and
 * opts.attributes mapping names to SNS's {Type, Value} or to a bare string
 * (String), number (Number) or array (String.Array). Resolves to the
 * message id once the message and its deliveries are durably queued. */
async function publish(topic, message, opts = {}) {
  const doc = {
    message: typeof message === 'string' ? message
      : Buffer.isBuffer(message) ? message.toString('utf8') : JSON.stringify(message),
  };
  if (opts.subject !== undefined && opts.subject !== null) doc.subject = opts.subject;
  if (opts.attributes) doc.attributes = opts.attributes;
  const res = await request('POST', `/topics/${seg(topic)}/publish`,
                            Buffer.from(JSON.stringify(doc)), { 'Content-Type': 'application/json' });
  if (res.status !== 202) fail(res);
  return JSON.parse(res.body).message_id;
}

module.exports = { kv: (store) => new KV(store), invoke, publish, KV, MayflyError, FunctionError };

/*
 * mayfly's Node.js runtime: runs an unchanged AWS Lambda Node.js handler.
 *
 * mayfly starts this file as the sandbox's first process:
 *
 *     /usr/bin/node /var/runtime/nodejs/bootstrap.js
 *
 * with the Lambda environment (_HANDLER, LAMBDA_TASK_ROOT, AWS_LAMBDA_*).  It
 * loads the handler named by _HANDLER ("file.function", where file may be
 * "dir/file" and function may be "a.b" for a nested export) from
 * LAMBDA_TASK_ROOT, then loops on the Lambda Runtime API at
 * AWS_LAMBDA_RUNTIME_API: GET the next event, call handler(event, context,
 * callback), POST the JSON result or the error.
 *
 * Why it looks the way it does:
 *
 * - Cold start is measured against a bare `node -e 0`, so the only module
 *   loaded beyond Node's own bootstrap is 'net'.  The 'http' client costs more
 *   to load and far more per request (agents, streams, a parser object per
 *   response) than the few lines of HTTP/1.1 below.
 * - Warm invokes are measured against nginx, so all calls share one
 *   persistent keep-alive connection with TCP_NODELAY, and each request is a
 *   single write.
 * - The programming model is Lambda's: async handlers, callback handlers
 *   (callback(err, result), context.done/succeed/fail), and
 *   context.callbackWaitsForEmptyEventLoop.  That last one needs the event
 *   loop to be able to empty while a handler runs, so the connection is
 *   unref()'d whenever no request is in flight and 'beforeExit' is the signal
 *   that the handler's work is finished.
 * - Error shapes, type names and messages follow Lambda's own Node.js runtime
 *   ({"errorType","errorMessage","trace"}; Runtime.ImportModuleError, ...), so
 *   tools written for Lambda recognise them.
 * - So do log lines: console's methods are replaced, as Lambda's runtime
 *   replaces them, to write "<time>\t<request id>\t<LEVEL>\t<message>" (or
 *   one JSON object with AWS_LAMBDA_LOG_FORMAT=JSON) as one line of stdout,
 *   filtered by AWS_LAMBDA_LOG_LEVEL.
 */
'use strict';

const net = require('net');
const path = require('path');
const fs = require('fs');
// Loaded by Node's own bootstrap already: console formats with it.
const util = require('util');

// Zygote mode: mayfly started this runtime before knowing its function.
// Node itself and the modules above are loaded; say so on the descriptor,
// then wait there for the function's environment ("K=V" strings,
// NUL-separated, one message). Its code is at /var/task when it arrives.
// Everything below reads the environment, so this comes first.
if (process.env.MAYFLY_ZYGOTE_FD) {
  const fd = Number(process.env.MAYFLY_ZYGOTE_FD);
  fs.writeSync(fd, 'r');
  const buf = Buffer.alloc(1 << 20);
  const n = fs.readSync(fd, buf, 0, buf.length, null);
  fs.closeSync(fd);
  if (n <= 0) process.exit(1); // let go before it was used
  for (const key of Object.keys(process.env)) delete process.env[key];
  for (const item of buf.subarray(0, n).toString('utf8').split('\0')) {
    const eq = item.indexOf('=');
    if (eq > 0) process.env[item.slice(0, eq)] = item.slice(eq + 1);
  }
}

const API_PREFIX = '/2018-06-01/runtime';
// Bounds what a misbehaving Runtime API could make us buffer.  The platform
// caps events at 6 MiB; a real header block is a few hundred bytes.
const MAX_BODY = 16 << 20;
const MAX_HEAD = 64 << 10;

// ---------------------------------------------------------------------------
// Errors

// Runtime failures carry Lambda's error type names. As in Lambda's runtime,
// each is a class of its own: the name (Runtime.X) is on its prototype and
// the class is called X, which is what a JSON log line shows as errorType.
const runtimeErrorClasses = new Map();

function runtimeError(type, message) {
  let cls = runtimeErrorClasses.get(type);
  if (!cls) {
    cls = class extends Error {};
    Object.defineProperty(cls, 'name', { value: type.replace(/^Runtime\./, '') });
    cls.prototype.name = type;
    runtimeErrorClasses.set(type, cls);
  }
  return new cls(message);
}

// Lambda's Node.js runtime names the frames `trace`; mayfly's other runtimes
// (and its API docs) say `stackTrace`. Both are sent so either reader works.
function withStackTrace(report) {
  report.stackTrace = report.trace;
  return report;
}

// The error object the Runtime API receives, shaped as Lambda's Node.js
// runtime shapes it.  Anything can be thrown in JavaScript; a non-Error is
// reported with its typeof as the type, as Lambda does.
function toRuntimeError(err) {
  try {
    if (err instanceof Error ||
        (err && typeof err.name === 'string' && typeof err.message === 'string' &&
         typeof err.stack === 'string')) {
      return withStackTrace({
        errorType: String(err.name),
        errorMessage: String(err.message),
        trace: typeof err.stack === 'string' ? err.stack.split('\n') : [],
      });
    }
    return withStackTrace({
      errorType: typeof err,
      errorMessage: err === undefined ? 'undefined' : err === null ? 'null' : String(err),
      trace: [],
    });
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage: 'callback called with Error argument, but there was a problem ' +
        'while retrieving one or more of its message, name, and stack',
      trace: [],
    };
  }
}

// ---------------------------------------------------------------------------
// Logging, as Lambda's Node.js runtime does it

const LEVELS = {
  TRACE: { name: 'TRACE', priority: 1 },
  DEBUG: { name: 'DEBUG', priority: 2 },
  INFO: { name: 'INFO', priority: 3 },
  WARN: { name: 'WARN', priority: 4 },
  ERROR: { name: 'ERROR', priority: 5 },
  FATAL: { name: 'FATAL', priority: 6 },
};

// The invocation in flight, under the symbol Lambda's runtime keeps it in
// (libraries read it there); undefined until the first one, so lines logged
// while the handler's module loads say "undefined", as on Lambda.
const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
const TENANT_ID = Symbol.for('aws.lambda.runtime.tenantId');

// An Error has no enumerable name, message or stack: a JSON log line shows
// them under Lambda's field names, with the error's own fields.
function jsonErrorReplacer(_key, value) {
  if (value instanceof Error) {
    return Object.assign({
      errorType: value?.constructor?.name ?? 'UnknownError',
      errorMessage: value.message,
      stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
    }, value);
  }
  return value;
}

function formatJson(level, message, params) {
  const doc = {
    timestamp: new Date().toISOString(),
    level: level.name,
    requestId: global[REQUEST_ID],
  };
  if (global[TENANT_ID]) doc.tenantId = global[TENANT_ID];
  if (params.length === 0) {
    // A lone argument stays what it is (an object stays an object).
    doc.message = message;
    try {
      return JSON.stringify(doc, jsonErrorReplacer);
    } catch (_) {
      doc.message = util.format(message);
      return JSON.stringify(doc);
    }
  }
  doc.message = util.format(message, ...params);
  for (const arg of [message, ...params]) {
    if (arg instanceof Error) {
      doc.errorType = arg?.constructor?.name ?? 'UnknownError';
      doc.errorMessage = arg.message;
      doc.stackTrace = typeof arg.stack === 'string' ? arg.stack.split('\n') : [];
      break;
    }
  }
  return JSON.stringify(doc);
}

function formatText(level, message, params) {
  return `${new Date().toISOString()}\t${global[REQUEST_ID]}\t${level.name}\t${util.format(message, ...params)}`;
}

// The format and level are the function's: read once its environment is
// known (after the zygote hand-over at the top of this file).
let logJson = false;

function patchConsole() {
  const json = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
  const format = json ? formatJson : formatText;
  const threshold = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] || LEVELS.TRACE;
  const nop = () => {};
  // One record, one line: the platform reads the log a line at a time.
  const logger = (level) => (level.priority < threshold.priority ? nop
    : (message, ...params) => {
      process.stdout.write(`${format(level, message, params).replace(/\n/g, '\r')}\n`);
    });
  console.trace = logger(LEVELS.TRACE);
  console.debug = logger(LEVELS.DEBUG);
  console.info = logger(LEVELS.INFO);
  console.log = console.info;
  console.warn = logger(LEVELS.WARN);
  console.error = logger(LEVELS.ERROR);
  // FATAL is never filtered out.
  console.fatal = (message, ...params) => {
    process.stdout.write(`${format(LEVELS.FATAL, message, params).replace(/\n/g, '\r')}\n`);
  };
  logJson = json;
}

// An Error's fields for a text log line: name, message and code first, its
// own fields, the stack as a list of lines.
function errorFields(value) {
  if (!(value instanceof Error)) return value;
  const out = Object.assign({ errorType: value.name, errorMessage: value.message, code: value.code }, value);
  if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
  return out;
}

// The runtime's own report of a failed call or init, through console.error
// as Lambda's runtime writes it: in text, the label and the error as
// "\t"-prefixed JSON; in JSON, the error as the record's message.
function logError(label, thrown) {
  try {
    const err = thrown instanceof Error ? thrown : new Error(thrown);
    if (logJson) {
      console.error(err);
      return;
    }
    let text;
    try {
      text = `\t${JSON.stringify(err, (_k, v) => errorFields(v))}`;
    } catch (_) {
      const report = toRuntimeError(err);
      text = `\t${JSON.stringify({ errorType: report.errorType, errorMessage: report.errorMessage, trace: report.trace })}`;
    }
    console.error(label, text);
  } catch (e) {
    // Whatever was thrown (a Symbol cannot become an Error's message) or
    // whatever the function did to console, the call's error is still
    // reported; only this line is lost.
    process.stderr.write(`mayfly runtime: cannot log the ${label}: ${e && e.message}\n`);
  }
}

function headerSafe(value) {
  const out = String(value).slice(0, 128).replace(/[^\x21-\x7e]/g, '_');
  return out || 'Unknown';
}

// ---------------------------------------------------------------------------
// The Runtime API connection

// One persistent HTTP/1.1 connection.  Requests are strictly sequential, as
// the Runtime API protocol is, so one parser state suffices.  A server that
// closes an idle connection gets the request again on a fresh one.
class RuntimeConnection {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    const port = Number(address.slice(colon + 1));
    if (colon < 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      throw new Error(`bad AWS_LAMBDA_RUNTIME_API '${address}'`);
    }
    this.host = address.slice(0, colon).replace(/^\[|\]$/g, '') || '127.0.0.1';
    this.port = port;
    this.hostHeader = address;
    this.sock = null;
    // Requests sent and not yet answered, oldest first: at most a result and
    // the poll for the next event, pipelined. { resolve, reject, retry, got }
    this.queue = [];
    this.resetParser();
  }

  resetParser() {
    this.chunks = [];
    this.length = 0;
    this.head = null; // parsed { status, headers, keep } once the header block is in
    this.need = -1; // body bytes wanted; -1 chunked, -2 until close
    this.bodyParts = null;
    this.bodyLength = 0;
  }

  connect() {
    const sock = net.connect({ host: this.host, port: this.port, noDelay: true });
    sock.setNoDelay(true);
    sock.on('data', (data) => this.onData(sock, data));
    sock.on('error', (err) => this.onClose(sock, err));
    sock.on('close', () => this.onClose(sock, null));
    this.sock = sock;
    this.resetParser();
  }

  // Returns a promise of { status, headers (lower-case names), body: Buffer }.
  request(method, urlPath, body, extraHeaders) {
    let head = `${method} ${urlPath} HTTP/1.1\r\nHost: ${this.hostHeader}\r\n${extraHeaders || ''}`;
    if (body === null || body === undefined) {
      head += '\r\n';
    } else {
      const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
      head += `Content-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
    }
    return new Promise((resolve, reject) => {
      let attempts = 0;
      const send = () => {
        attempts++;
        const reused = this.sock !== null;
        if (!reused) this.connect();
        this.queue.push({
          resolve,
          reject,
          got: false,
          // A reused connection the server closed while idle: nothing was
          // processed, so sending again on a fresh connection is safe (when
          // nothing else was in flight on it).
          retry: reused && attempts === 1 && this.queue.length === 0 ? send : null,
        });
        const sock = this.sock;
        sock.ref();
        if (body === null || body === undefined) {
          sock.write(head, 'latin1');
        } else if (typeof body === 'string' && body.length < 65536) {
          sock.write(head + body);
        } else {
          sock.cork();
          sock.write(head, 'latin1');
          sock.write(body);
          sock.uncork();
        }
      };
      send();
    });
  }

  onClose(sock, err) {
    if (sock !== this.sock) return;
    this.sock = null;
    if (this.head && this.need === -2 && !err) {
      // A body delimited by the end of the connection is complete now.
      this.finish(Buffer.concat(this.bodyParts, this.bodyLength), false);
      return;
    }
    const queue = this.queue;
    this.queue = [];
    this.resetParser();
    if (!queue.length) return;
    if (queue.length === 1 && !queue[0].got && queue[0].retry) {
      queue[0].retry();
      return;
    }
    for (const p of queue) p.reject(err || new Error('the Runtime API closed the connection'));
  }

  fail(sock, message) {
    const queue = this.queue;
    this.queue = [];
    this.sock = null;
    sock.destroy();
    this.resetParser();
    for (const p of queue) p.reject(new Error(message));
  }

  onData(sock, data) {
    if (sock !== this.sock || !this.queue.length) {
      // Bytes nobody asked for: the connection's state is unknowable.
      sock.destroy();
      if (sock === this.sock) this.sock = null;
      return;
    }
    this.queue[0].got = true;
    if (this.head === null) {
      this.chunks.push(data);
      this.length += data.length;
      const buf = this.chunks.length === 1 ? data : Buffer.concat(this.chunks, this.length);
      const end = buf.indexOf('\r\n\r\n', 0, 'latin1');
      if (end < 0) {
        if (this.length > MAX_HEAD) this.fail(sock, 'response header block too large');
        else this.chunks = [buf];
        return;
      }
      const err = this.parseHead(buf.toString('latin1', 0, end));
      if (err) {
        this.fail(sock, err);
        return;
      }
      this.chunks = [];
      this.length = 0;
      data = buf.subarray(end + 4);
      if (this.head.status >= 100 && this.head.status < 200) {
        // An interim response (100 Continue): the real one follows.
        this.head = null;
        if (data.length) this.onData(sock, data);
        return;
      }
    }
    this.onBody(sock, data);
  }

  parseHead(text) {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.(\d) (\d{3})/.exec(lines[0]);
    if (!m) return `bad status line '${lines[0].slice(0, 80)}'`;
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(':');
      if (colon <= 0) return `bad header line '${line.slice(0, 80)}'`;
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(m[2]);
    const keep = m[1] !== '0' && (headers.connection || '').toLowerCase() !== 'close';
    const te = (headers['transfer-encoding'] || '').toLowerCase();
    let need;
    if (te && te !== 'identity') {
      if (!te.endsWith('chunked')) return `unsupported transfer-encoding '${te}'`;
      need = -1;
    } else if (headers['content-length'] !== undefined) {
      const cl = headers['content-length'];
      if (!/^\d{1,15}$/.test(cl) || Number(cl) > MAX_BODY) return `bad content-length '${cl}'`;
      need = Number(cl);
    } else if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
      need = 0;
    } else {
      need = -2;
    }
    this.head = { status, headers, keep: keep && need !== -2 };
    this.need = need;
    this.bodyParts = [];
    this.bodyLength = 0;
    this.chunkState = { size: -1, trailer: false };
    return null;
  }

  onBody(sock, data) {
    if (this.need >= 0) {
      if (data.length) {
        this.bodyParts.push(data);
        this.bodyLength += data.length;
      }
      if (this.bodyLength < this.need) return;
      const all = this.bodyParts.length === 1 ? this.bodyParts[0] : Buffer.concat(this.bodyParts, this.bodyLength);
      // Bytes past this body begin the answer to the next, pipelined request.
      const rest = all.subarray(this.need);
      this.finish(all.subarray(0, this.need), this.head.keep);
      if (rest.length) this.onData(sock, rest);
    } else if (this.need === -2) {
      this.bodyParts.push(data);
      this.bodyLength += data.length;
      if (this.bodyLength > MAX_BODY) this.fail(sock, 'response body too large');
    } else {
      this.onChunked(sock, data);
    }
  }

  // Chunked transfer coding: "SIZE[;ext]\r\n" DATA "\r\n" ... "0\r\n"
  // trailers "\r\n".  Unparsed bytes wait in this.chunks.
  onChunked(sock, data) {
    let buf = this.length ? Buffer.concat([...this.chunks, data]) : data;
    this.chunks = [];
    this.length = 0;
    const st = this.chunkState;
    for (;;) {
      if (st.size < 0) {
        const eol = buf.indexOf('\r\n', 0, 'latin1');
        if (eol < 0) break;
        const line = buf.toString('latin1', 0, eol);
        buf = buf.subarray(eol + 2);
        if (st.trailer) {
          if (line === '') {
            this.finish(Buffer.concat(this.bodyParts, this.bodyLength), this.head.keep);
            // Bytes past the trailers begin the next pipelined answer.
            if (buf.length) this.onData(sock, buf);
            return;
          }
          continue;
        }
        const sizeText = line.split(';', 1)[0].trim();
        if (!/^[0-9a-fA-F]{1,15}$/.test(sizeText)) {
          this.fail(sock, `bad chunk size '${sizeText.slice(0, 20)}'`);
          return;
        }
        const size = parseInt(sizeText, 16);
        if (this.bodyLength + size > MAX_BODY) {
          this.fail(sock, 'chunked body too large');
          return;
        }
        if (size === 0) st.trailer = true;
        else st.size = size;
        continue;
      }
      if (buf.length < st.size + 2) break;
      if (buf[st.size] !== 13 || buf[st.size + 1] !== 10) {
        this.fail(sock, 'bad chunk terminator');
        return;
      }
      this.bodyParts.push(buf.subarray(0, st.size));
      this.bodyLength += st.size;
      buf = buf.subarray(st.size + 2);
      st.size = -1;
    }
    if (buf.length) {
      if (buf.length > MAX_HEAD + (st.size > 0 ? st.size : 0)) {
        this.fail(sock, 'bad chunked body');
        return;
      }
      this.chunks = [buf];
      this.length = buf.length;
    }
  }

  finish(body, keep) {
    const pending = this.queue.shift();
    const head = this.head;
    this.resetParser();
    let dropped = [];
    if (this.sock) {
      if (keep) {
        if (!this.queue.length) this.sock.unref();
      } else {
        this.sock.destroy();
        this.sock = null;
        // Requests pipelined behind this answer will get none on this
        // connection; their callers start over on a new one.
        dropped = this.queue;
        this.queue = [];
      }
    }
    pending.resolve({ status: head.status, headers: head.headers, body });
    for (const p of dropped) p.reject(new Error('the Runtime API closed the connection'));
  }
}

// ---------------------------------------------------------------------------
// Loading the handler

const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || '/var/task';

// The platform's helpers (require('mayfly')), after every folder a
// function's own module of that name could be in. Node reads NODE_PATH
// once at its start, before a zygote knows its function: the lookup list
// is made again from the function's NODE_PATH and this folder.
{
  const Module = require('module');
  const own = process.env.NODE_PATH;
  process.env.NODE_PATH = [own, path.join(__dirname, 'lib')].filter(Boolean).join(path.delimiter);
  Module._initPaths();
  if (own === undefined) delete process.env.NODE_PATH;
  else process.env.NODE_PATH = own;
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (_) {
    return false;
  }
}

// Node's rule for whether a .js file is an ES module: the "type" of the
// nearest package.json, searching upward but not past node_modules.
function packageTypeIsModule(dir) {
  for (;;) {
    if (dir.endsWith(`${path.sep}node_modules`)) return false;
    const pj = path.join(dir, 'package.json');
    if (isFile(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8')).type === 'module';
      } catch (_) {
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return false;
    dir = parent;
  }
}

function importESM(file) {
  const { pathToFileURL } = require('url');
  return import(pathToFileURL(file).href);
}

// Lambda's search order: the exact file, FILE.js (CommonJS unless package.json
// says "module"), FILE.mjs, FILE.cjs, then a package on the Node module path.
async function loadModule(moduleRoot, moduleName) {
  const base = path.resolve(TASK_ROOT, moduleRoot, moduleName);
  if (isFile(base)) return require(base);
  if (isFile(`${base}.js`)) {
    if (packageTypeIsModule(path.dirname(base))) return importESM(`${base}.js`);
    return require(`${base}.js`);
  }
  if (isFile(`${base}.mjs`)) return importESM(`${base}.mjs`);
  if (isFile(`${base}.cjs`)) return require(`${base}.cjs`);
  return require(require.resolve(moduleName, { paths: [TASK_ROOT, path.resolve(TASK_ROOT, moduleRoot)] }));
}

async function loadHandler(spec) {
  if (spec.includes('..')) {
    throw runtimeError('Runtime.MalformedHandlerName',
      `'${spec}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`);
  }
  const file = path.basename(spec);
  const moduleRoot = spec.slice(0, spec.length - file.length);
  const m = /^([^.]*)\.(.*)$/.exec(file);
  if (!m || !m[1] || !m[2]) throw runtimeError('Runtime.MalformedHandlerName', 'Bad handler');

  let mod;
  try {
    mod = await loadModule(moduleRoot, m[1]);
  } catch (e) {
    if (e instanceof SyntaxError) throw runtimeError('Runtime.UserCodeSyntaxError', String(e));
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
      throw runtimeError('Runtime.ImportModuleError', String(e));
    }
    throw e;
  }
  const fn = m[2].split('.').reduce((obj, key) => (obj == null ? undefined : obj[key]), mod);
  if (!fn) throw runtimeError('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  if (typeof fn !== 'function') throw runtimeError('Runtime.HandlerNotFound', `${spec} is not a function`);
  return fn;
}

// ---------------------------------------------------------------------------
// Streamed responses (Lambda's RESPONSE_STREAM)
//
// As on Lambda, a handler wrapped in awslambda.streamifyResponse is called
// as handler(event, responseStream, context) and writes its answer to a
// Writable; awslambda.HttpResponseStream.from(stream, {statusCode, headers,
// cookies}) makes it a function URL's HTTP response (the prelude goes out
// before the first byte). The stream is one POST .../response on a
// connection of its own, with Lambda-Runtime-Function-Response-Mode:
// streaming and a chunked body; each write is a chunk, and a write's
// callback waits for the socket, so a slow reader of the answer slows the
// handler's writes down. A failure once something was written ends the
// stream with Lambda's error trailers. 'stream' is loaded only by a
// function that streams.

const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';
const METADATA_PRELUDE_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const TRAILER_ERROR_TYPE = 'Lambda-Runtime-Function-Error-Type';
const TRAILER_ERROR_BODY = 'Lambda-Runtime-Function-Error-Body';

// Lambda's invoke store: the call's request id, X-Ray trace id and tenant
// id, which the @aws/lambda-invoke-store package hands to whoever asks for
// it (the AWS SDK's trace header, Powertools) when the runtime keeps one at
// globalThis.awslambda.InvokeStore. With one call at a time it holds the
// current call's; with AWS_LAMBDA_MAX_CONCURRENCY above 1 an
// AsyncLocalStorage carries each call's into everything its code schedules
// (process.env._X_AMZN_TRACE_ID, one for the whole process, names only the
// call that started last).
const INVOKE_KEYS = Object.freeze({
  REQUEST_ID: Symbol.for('_AWS_LAMBDA_REQUEST_ID'),
  X_RAY_TRACE_ID: Symbol.for('_AWS_LAMBDA_X_RAY_TRACE_ID'),
  TENANT_ID: Symbol.for('_AWS_LAMBDA_TENANT_ID'),
});

class InvokeStore {
  constructor() {
    this.PROTECTED_KEYS = INVOKE_KEYS;
    this.current = undefined;
    this.als = null; // set when calls run side by side
  }

  getContext() {
    return this.als ? this.als.getStore() : this.current;
  }

  hasContext() {
    return this.getContext() !== undefined;
  }

  get(key) {
    return this.getContext()?.[key];
  }

  set(key, value) {
    if (Object.values(INVOKE_KEYS).includes(key)) {
      throw new Error(`Cannot modify protected Lambda context field: ${String(key)}`);
    }
    let context = this.getContext();
    if (!context) {
      if (this.als) throw new Error('No context available');
      context = this.current = {};
    }
    context[key] = value;
  }

  run(context, fn) {
    if (this.als) return this.als.run(context, fn);
    this.current = context;
    return fn();
  }

  getRequestId() {
    return this.get(INVOKE_KEYS.REQUEST_ID) ?? '-';
  }

  getXRayTraceId() {
    return this.get(INVOKE_KEYS.X_RAY_TRACE_ID);
  }

  getTenantId() {
    return this.get(INVOKE_KEYS.TENANT_ID);
  }
}
InvokeStore.PROTECTED_KEYS = INVOKE_KEYS;
const invokeStore = new InvokeStore();

global.awslambda = {
  streamifyResponse(fn, options) {
    fn[HANDLER_STREAMING] = STREAM_RESPONSE;
    if (options && Number.isInteger(options.highWaterMark)) {
      fn[HANDLER_HIGHWATERMARK] = options.highWaterMark;
    }
    return fn;
  },
  HttpResponseStream: class HttpResponseStream {
    static from(underlyingStream, prelude) {
      underlyingStream.setContentType(METADATA_PRELUDE_CONTENT_TYPE);
      const metadata = JSON.stringify(prelude);
      underlyingStream._onBeforeFirstWrite = (write) => {
        write(metadata);
        write(new Uint8Array(8));
      };
      return underlyingStream;
    }
  },
};

// AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA keeps the store out of the global
// object, as the package itself does then.
if (!['1', 'true'].includes(process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA || '')) {
  global.awslambda.InvokeStore = invokeStore;
}

// The Writable a streaming handler gets, and the promise of the Runtime
// API's answer once it has ended (resolves to the status).
function createResponseStream(urlPath, highWaterMark) {
  const { Writable } = require('stream');
  let contentType = 'application/octet-stream';
  let sock = null;
  let resolveDone;
  const done = new Promise((resolve) => { resolveDone = resolve; });

  const frame = (buf) => Buffer.concat([Buffer.from(`${buf.length.toString(16)}\r\n`, 'latin1'),
    buf, Buffer.from('\r\n', 'latin1')]);

  const start = () => {
    sock = net.connect({ host: conn.host, port: conn.port, noDelay: true });
    sock.setNoDelay(true);
    let answer = Buffer.alloc(0);
    let status = 0;
    const settle = () => resolveDone(status);
    sock.on('data', (data) => {
      answer = Buffer.concat([answer, data]);
      const end = answer.indexOf('\r\n\r\n', 0, 'latin1');
      if (end < 0) return;
      const head = answer.toString('latin1', 0, end);
      status = Number((/^HTTP\/1\.\d (\d{3})/.exec(head) || [])[1]) || 0;
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (!cl || answer.length - end - 4 >= Number(cl[1])) {
        if (status >= 300) {
          process.stderr.write(`mayfly runtime: streamed response answered ${status}: ${answer.toString('utf8', end + 4, end + 204)}\n`);
        }
        sock.destroy();
        settle();
      }
    });
    sock.on('error', settle);
    sock.on('close', settle);
    sock.write(`POST ${urlPath} HTTP/1.1\r\nHost: ${conn.hostHeader}\r\n` +
      `Content-Type: ${contentType}\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n` +
      `Transfer-Encoding: chunked\r\nTrailer: ${TRAILER_ERROR_TYPE}, ${TRAILER_ERROR_BODY}\r\n\r\n`,
      'latin1');
  };

  // The error that ends the stream, set by fail() before it ends it.
  let failure = null;
  const stream = new Writable({
    highWaterMark,
    write(chunk, _encoding, callback) {
      if (!sock) {
        start();
        if (typeof stream._onBeforeFirstWrite === 'function') {
          stream._onBeforeFirstWrite((c) => sock.write(frame(Buffer.from(c))));
        }
      }
      if (!chunk.length) {
        callback();
        return;
      }
      sock.write(frame(chunk), (err) => callback(err || null));
    },
    final(callback) {
      if (!sock) {
        start();
        if (typeof stream._onBeforeFirstWrite === 'function' && !failure) {
          stream._onBeforeFirstWrite((c) => sock.write(frame(Buffer.from(c))));
        }
      }
      let tail = '0\r\n';
      if (failure) {
        tail += `${TRAILER_ERROR_TYPE}: ${headerSafe(failure.errorType)}\r\n` +
          `${TRAILER_ERROR_BODY}: ${Buffer.from(JSON.stringify(failure)).toString('base64')}\r\n`;
      }
      sock.write(`${tail}\r\n`, 'latin1', () => callback());
    },
  });
  // Lambda's stream takes any value: what is not bytes or text is JSON.
  const write = stream.write.bind(stream);
  stream.write = (chunk, encoding, callback) => {
    if (typeof chunk !== 'string' && !Buffer.isBuffer(chunk) && !(chunk instanceof Uint8Array)) {
      chunk = JSON.stringify(chunk);
    }
    return write(chunk, encoding, callback);
  };
  stream.setContentType = (type) => {
    if (sock) throw runtimeError('Runtime.InvalidStreamingOperation', 'Cannot set content-type, too late.');
    contentType = String(type);
  };
  return {
    stream,
    done,
    started: () => sock !== null,
    // Ends the stream with report (Lambda's error object) in its trailers.
    fail(report) {
      failure = report;
      if (!stream.writableEnded) stream.end();
    },
    destroy() {
      if (sock) sock.destroy();
    },
  };
}

// ---------------------------------------------------------------------------
// Invocations

const ENV = {
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
  memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
  logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
};

let conn = null;
let handler = null;
let current = null; // the invocation whose result has not been delivered yet
let crashed = false; // an uncaught exception: exit once in-flight work is out
// AWS_LAMBDA_MAX_CONCURRENCY: the calls served at once (see "Many calls at
// once" below); with 1, everything here works as it always has.
let concurrency = 1;

function fatal(message) {
  process.stderr.write(`mayfly runtime: ${message}\n`);
  process.exit(1);
}

function parseHeaderJson(value, name) {
  if (value === undefined || value === '') return undefined;
  try {
    return JSON.parse(value);
  } catch (e) {
    throw new Error(`Cannot parse ${name} as json: ${e}`);
  }
}

class Invocation {
  constructor(headers, body, connection) {
    this.conn = connection;
    this.id = headers['lambda-runtime-aws-request-id'] || '';
    this.headers = headers;
    this.body = body;
    this.claimed = false; // the handler has reported, one way or another
    this.finished = false; // a result or an error is being posted
    this.returnedPromise = false;
    this.deferred = null; // { result } while a callback waits for an empty loop
    this.base = `${API_PREFIX}/invocation/${encodeURIComponent(this.id)}`;
  }

  // As on Lambda, only the first of the ways a handler can report counts:
  // callback, context.done/succeed/fail, its promise, or its return value.
  claim() {
    if (this.claimed) return false;
    this.claimed = true;
    return true;
  }

  context() {
    const inv = this;
    const h = this.headers;
    const deadline = Number(h['lambda-runtime-deadline-ms']) || 0;
    let waits = true;
    const done = (err, result) => {
      if (!inv.claim()) return;
      if (err !== undefined && err !== null) inv.fail(err);
      else inv.succeed(result);
    };
    const ctx = {
      get callbackWaitsForEmptyEventLoop() {
        return waits;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waits = value;
      },
      succeed: (result) => done(null, result),
      fail: (err) => done(err === undefined || err === null ? 'handled' : err),
      done,
      functionName: ENV.functionName,
      functionVersion: ENV.functionVersion,
      memoryLimitInMB: ENV.memoryLimitInMB,
      logGroupName: ENV.logGroupName,
      logStreamName: ENV.logStreamName,
      clientContext: parseHeaderJson(h['lambda-runtime-client-context'], 'ClientContext'),
      identity: parseHeaderJson(h['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      invokedFunctionArn: h['lambda-runtime-invoked-function-arn'],
      // The call's tenant id under tenant isolation mode, undefined without.
      tenantId: h['lambda-runtime-aws-tenant-id'],
      awsRequestId: this.id,
      traceparent: h['mayfly-traceparent'],
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
    const callback = (err, result) => {
      if (!inv.claim()) return;
      if (err !== undefined && err !== null) inv.fail(err);
      else if (waits && concurrency === 1) inv.deferred = { result };
      else inv.succeed(result);
    };
    return [ctx, done, callback];
  }

  run() {
    const invoke = {
      [INVOKE_KEYS.REQUEST_ID]: this.id,
      [INVOKE_KEYS.X_RAY_TRACE_ID]: this.headers['lambda-runtime-trace-id'] || undefined,
      [INVOKE_KEYS.TENANT_ID]: this.headers['lambda-runtime-aws-tenant-id'],
    };
    if (concurrency > 1) {
      // The request id is the call's own, wherever its code runs next.
      calls.add(this);
      callStore.run(this, () => invokeStore.run(invoke, () => this.runHandler()));
      return;
    }
    global[REQUEST_ID] = this.id;
    global[TENANT_ID] = this.headers['lambda-runtime-aws-tenant-id'];
    invokeStore.run(invoke, () => this.runHandler());
  }

  runHandler() {
    const trace = this.headers['lambda-runtime-trace-id'];
    if (trace) process.env._X_AMZN_TRACE_ID = trace;
    else delete process.env._X_AMZN_TRACE_ID;
    const traceparent = this.headers['mayfly-traceparent'];
    if (traceparent) process.env.TRACEPARENT = traceparent;
    else delete process.env.TRACEPARENT;
    let result;
    let done;
    if (handler[HANDLER_STREAMING] === STREAM_RESPONSE) {
      this.runStreaming();
      return;
    }
    try {
      const [ctx, ctxDone, callback] = this.context();
      done = ctxDone;
      const event = JSON.parse(this.body.toString('utf8'));
      this.body = null;
      result = handler(event, ctx, callback);
    } catch (err) {
      if (this.claim()) this.fail(err);
      return;
    }
    if (result !== null && result !== undefined && typeof result.then === 'function') {
      this.returnedPromise = true;
      result.then((value) => done(null, value),
        (err) => done(err === undefined || err === null ? 'handled' : err));
    } else if (result !== undefined) {
      // Lambda ignores what a non-async handler returns and waits for the
      // callback; mayfly takes a returned value as the result, which is what
      // such code means.
      done(null, result);
    }
    // Otherwise the callback, context.done/succeed/fail, or an empty event
    // loop (see onBeforeExit) ends the invocation.
  }

  // A streaming handler: its answer ends when it ends its stream (or, if it
  // does not, when its promise settles); an error after the first write
  // goes into the stream's trailers, one before is an ordinary error.
  runStreaming() {
    this.claimed = true;
    const rs = createResponseStream(`${this.base}/response`, handler[HANDLER_HIGHWATERMARK]);
    this.response = rs;
    let result;
    try {
      const [ctx] = this.context();
      const event = JSON.parse(this.body.toString('utf8'));
      this.body = null;
      result = handler(event, rs.stream, ctx);
    } catch (err) {
      this.streamFailed(err);
      return;
    }
    rs.stream.on('error', (err) => this.streamFailed(err));
    Promise.resolve(result).then(() => {
      if (!rs.stream.writableEnded) rs.stream.end();
    }, (err) => this.streamFailed(err === undefined || err === null ? 'handled' : err));
    rs.done.then(() => this.streamDone());
  }

  streamFailed(err) {
    if (this.finished) return;
    const rs = this.response;
    logError('Invoke Error', err);
    if (!rs.started()) {
      // Nothing was sent: the call fails as any call does.
      this.finished = true;
      rs.stream.destroy();
      this.postError(toRuntimeError(err));
      return;
    }
    rs.fail(toRuntimeError(err));
  }

  streamDone() {
    if (this.finished) return;
    this.finished = true;
    if (current === this) current = null;
    if (concurrency > 1) {
      this.endLines();
      calls.delete(this);
    }
    if (crashed) process.exit(1);
    next(this.conn);
  }

  succeed(result) {
    if (this.finished) return;
    let body;
    try {
      body = JSON.stringify(result === undefined ? null : result);
    } catch (err) {
      this.fail(new Error(`Unable to stringify response body: ${err && err.message}`));
      return;
    }
    if (body === undefined) body = 'null'; // a function or a symbol
    this.finished = true;
    this.post(`${this.base}/response`, body, '', true);
  }

  fail(err) {
    if (this.finished) return;
    this.finished = true;
    logError('Invoke Error', err);
    this.postError(toRuntimeError(err));
  }

  postError(report) {
    let body;
    try {
      body = JSON.stringify(report);
    } catch (_) {
      body = JSON.stringify({ errorType: 'Error', errorMessage: 'unserialisable error', trace: [] });
    }
    this.post(`${this.base}/error`, body, `Lambda-Runtime-Function-Error-Type: ${headerSafe(report.errorType)}\r\n`);
  }

  // A result is sent with the poll for the next event right behind it, in
  // one write: the server can then answer both in one write too. An error
  // report goes alone.
  post(urlPath, body, headers, pipelineNext) {
    const c = this.conn;
    if (concurrency > 1) this.endLines();
    // Corked, the two requests leave in one writev: one system call, not two.
    const corked = pipelineNext ? c.sock : null;
    if (corked) corked.cork();
    const posted = c.request('POST', urlPath, body, headers);
    let polled = null;
    if (pipelineNext) {
      polled = c.request('GET', NEXT_PATH, null, '');
      polled.catch(() => {}); // handled below, once the result is answered
    }
    if (corked) corked.uncork();
    posted.then((res) => {
      // With many calls at once, a call past its deadline was failed by
      // the platform and its late answer is refused (4xx): nothing is wrong.
      if (res.status >= 300 && !(concurrency > 1 && res.status >= 400 && res.status < 500)) {
        process.stderr.write(`mayfly runtime: ${urlPath} answered ${res.status}: ${res.body.toString('utf8', 0, 200)}\n`);
      }
      if (current === this) current = null;
      if (concurrency > 1) calls.delete(this);
      if (crashed) process.exit(1);
      if (polled) polled.then((r) => startInvocation(r, c), () => next(c));
      else next(c);
    }, (err) => fatal(`reporting ${this.id} failed: ${err.message}`));
  }
}

const NEXT_PATH = `${API_PREFIX}/invocation/next`;

// ---------------------------------------------------------------------------
// Many calls at once
//
// With AWS_LAMBDA_MAX_CONCURRENCY=N > 1 (the function's instance_concurrency)
// this process serves up to N calls at once, as Lambda's Node.js runtime does
// on managed instances: N loops, each with a connection of its own holding
// one poll for the next event, run their handlers side by side on the event
// loop.
//
// The platform tells the calls' log lines apart by the request id in each
// (the first UUID in its first 256 bytes). An AsyncLocalStorage carries each
// call's invocation into everything its code schedules, and
// global[REQUEST_ID] reads it from there, so console's lines name the call
// they come from. process.stdout.write and process.stderr.write are wrapped
// to write whole lines during a call, a line without the call's request id
// in its first 256 bytes getting Lambda's prefix, "TIME\tID\tINFO\t"
// ("ERROR" on stderr), or with AWS_LAMBDA_LOG_FORMAT=JSON becoming a JSON
// record with requestId; what is written outside any call goes out as it is.
//
// With other calls in flight the event loop does not empty while a handler
// works, so callbackWaitsForEmptyEventLoop is not waited for (a callback's
// result is sent at once), and a non-async handler that neither returns a
// value nor calls back is ended by its deadline, unless every loop is in
// such a handler and the event loop empties. An uncaught exception ends the
// process, as with one call: every call in flight is answered with it.

let callStore = null; // the AsyncLocalStorage of the invocations
const calls = new Set(); // the invocations whose answer is not acknowledged

function maxConcurrency() {
  const n = Number(process.env.AWS_LAMBDA_MAX_CONCURRENCY || '1');
  return Number.isInteger(n) && n > 1 ? n : 1;
}

// line with the request id of inv in its first 256 bytes.
function tagLine(inv, level, line) {
  const at = line.indexOf(inv.id);
  if (at >= 0 && at + inv.id.length <= 256 &&
      (at < 64 || Buffer.byteLength(line.slice(0, at + inv.id.length)) <= 256)) {
    return line;
  }
  if (logJson) {
    return JSON.stringify({ timestamp: new Date().toISOString(), level, requestId: inv.id, message: line });
  }
  return `${new Date().toISOString()}\t${inv.id}\t${level}\t${line}`;
}

// Wraps stream.write (stdout or stderr): during a call, whole lines, each
// tagged; the part of a line not yet ended waits in inv[key]. Returns the
// stream's own write.
function wrapWrite(stream, level, key) {
  const write = stream.write.bind(stream);
  stream.write = (chunk, encoding, callback) => {
    const inv = callStore.getStore();
    if (!inv) return write(chunk, encoding, callback);
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    let text;
    if (typeof chunk === 'string') {
      text = !encoding || encoding === 'utf8' || encoding === 'utf-8' ? chunk
        : Buffer.from(chunk, encoding).toString('utf8');
    } else {
      text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
    }
    let out = '';
    const partial = inv[key];
    if (partial) {
      inv[key] = '';
      // A log record (a console line, tagged already) after a print
      // without a newline: the print is a line of its own.
      if (text.endsWith('\n') && tagLine(inv, level, text) === text) out = `${tagLine(inv, level, partial)}\n`;
      else text = partial + text;
    }
    const end = text.lastIndexOf('\n');
    if (end >= 0) {
      for (const line of text.slice(0, end).split('\n')) out += `${tagLine(inv, level, line)}\n`;
      text = text.slice(end + 1);
    }
    if (text.length > 65536) {
      out += `${tagLine(inv, level, text)}\n`;
      text = '';
    }
    inv[key] = text;
    if (out) return write(out, 'utf8', callback);
    if (callback) process.nextTick(callback);
    return true;
  };
  return write;
}

let writeOut = null; // process.stdout's and process.stderr's own writes
let writeErr = null;

// What a call printed without a final newline, as lines of their own
// before its answer goes out.
Invocation.prototype.endLines = function endLines() {
  if (this.partialOut) {
    writeOut(`${tagLine(this, 'INFO', this.partialOut)}\n`);
    this.partialOut = '';
  }
  if (this.partialErr) {
    writeErr(`${tagLine(this, 'ERROR', this.partialErr)}\n`);
    this.partialErr = '';
  }
};

function serveConcurrently() {
  const { AsyncLocalStorage } = require('async_hooks');
  callStore = new AsyncLocalStorage();
  invokeStore.als = new AsyncLocalStorage();
  Object.defineProperty(global, REQUEST_ID, {
    configurable: true,
    get: () => callStore.getStore()?.id,
    set: () => {},
  });
  Object.defineProperty(global, TENANT_ID, {
    configurable: true,
    get: () => callStore.getStore()?.headers['lambda-runtime-aws-tenant-id'],
    set: () => {},
  });
  writeOut = wrapWrite(process.stdout, 'INFO', 'partialOut');
  writeErr = wrapWrite(process.stderr, 'ERROR', 'partialErr');
  process.on('beforeExit', onBeforeExitConcurrent);
  process.on('uncaughtException', (err) => onCrashConcurrent(err, false));
  process.on('unhandledRejection', (reason, promise) => onCrashConcurrent(reason, true, promise));
  for (let i = 0; i < concurrency; i++) next(i === 0 ? conn : new RuntimeConnection(conn.hostHeader));
}

// Every loop is in a handler and nothing is left to run: as with one call,
// each such handler is over.
function onBeforeExitConcurrent() {
  for (const inv of calls) {
    if (inv.finished || !inv.claim()) continue;
    if (inv.returnedPromise) {
      inv.fail(runtimeError('Runtime.NodeJsExit',
        'The handler\'s promise never settled and nothing else was left to run'));
    } else {
      inv.succeed(null);
    }
  }
}

function onCrashConcurrent(err, rejection, promise) {
  const report = crashReport(err, rejection, promise);
  if (crashed) return;
  crashed = true;
  const body = JSON.stringify(report);
  const answers = [];
  for (const inv of calls) {
    if (inv.finished) continue;
    if (inv.response && inv.response.started()) {
      inv.response.fail(report);
      answers.push(inv.response.done);
      continue;
    }
    inv.finished = true;
    inv.claimed = true;
    inv.endLines();
    answers.push(inv.conn.request('POST', `${inv.base}/error`, body,
      `Lambda-Runtime-Function-Error-Type: ${headerSafe(report.errorType)}\r\n`).catch(() => {}));
  }
  const quit = () => process.exit(1);
  Promise.all(answers).then(quit, quit);
}

function startInvocation(res, c) {
  if (res.status !== 200) {
    fatal(`next event: HTTP ${res.status}: ${res.body.toString('utf8', 0, 200)}`);
  }
  current = new Invocation(res.headers, res.body, c);
  current.run();
}

function next(c) {
  c.request('GET', NEXT_PATH, null, '').then((res) => startInvocation(res, c),
    (err) => fatal(`waiting for the next event failed: ${err.message}`));
}

// The event loop has nothing left to do while an invocation is open: the
// handler's work is over.  This is where callbackWaitsForEmptyEventLoop
// completes, and where a handler that never reported anything is ended.
function onBeforeExit() {
  const inv = current;
  if (!inv || inv.finished) return;
  if (inv.deferred) {
    inv.succeed(inv.deferred.result);
    return;
  }
  if (!inv.claim()) return;
  if (inv.returnedPromise) {
    inv.fail(runtimeError('Runtime.NodeJsExit',
      'The handler\'s promise never settled and nothing else was left to run'));
  } else {
    // A non-async handler that never called back: Lambda answers null.
    inv.succeed(null);
  }
}

// A crash during an invocation is that invocation's error; then the runtime
// exits, because its state is unknowable, and mayfly starts a fresh one.
// Logs an uncaught exception or an unhandled rejection and returns the
// error report it makes.
function crashReport(err, rejection, promise) {
  let report = toRuntimeError(err);
  if (rejection) {
    let reason;
    try {
      reason = String(err);
    } catch (_) {
      reason = typeof err;
    }
    report = { errorType: 'Runtime.UnhandledPromiseRejection', errorMessage: reason, trace: report.trace };
    // Logged as Lambda's runtime logs it: an error of its own that carries
    // the reason and the promise.
    const logged = runtimeError('Runtime.UnhandledPromiseRejection', reason);
    logged.reason = err;
    logged.promise = promise;
    logError('Unhandled Promise Rejection', logged);
  } else {
    logError('Uncaught Exception', err);
  }
  return report;
}

function onCrash(err, rejection, promise) {
  const report = crashReport(err, rejection, promise);
  if (crashed) return;
  crashed = true;
  const inv = current;
  if (inv && !inv.finished && inv.response && inv.response.started()) {
    // A stream under way ends with the error in its trailers.
    inv.response.fail(report);
    const quit = () => process.exit(1);
    inv.response.done.then(quit, quit);
  } else if (inv && !inv.finished) {
    inv.finished = true;
    inv.claimed = true;
    const body = JSON.stringify(report);
    const done = () => process.exit(1);
    inv.conn.request('POST', `${inv.base}/error`, body,
      `Lambda-Runtime-Function-Error-Type: ${headerSafe(report.errorType)}\r\n`).then(done, done);
  } else if (!(inv && conn.pending)) {
    // Between invocations: nothing to report to.
    process.exit(1);
  }
  // Otherwise the invocation's result is on its way; post() exits once it
  // has been delivered.
}

async function main() {
  patchConsole();
  try {
    conn = new RuntimeConnection(process.env.AWS_LAMBDA_RUNTIME_API || '127.0.0.1:9001');
  } catch (e) {
    fatal(e.message);
  }
  try {
    process.chdir(TASK_ROOT);
  } catch (_) {
    // Lambda's working directory is the task root; carry on if it is absent.
  }

  try {
    handler = await loadHandler(process.env._HANDLER || '');
  } catch (err) {
    const report = toRuntimeError(err);
    logError('Init Error', err);
    const body = JSON.stringify(report);
    try {
      await conn.request('POST', `${API_PREFIX}/init/error`, body,
        `Lambda-Runtime-Function-Error-Type: ${headerSafe(report.errorType)}\r\n`);
    } catch (e) {
      process.stderr.write(`mayfly runtime: cannot report the init error: ${e.message}\n`);
    }
    process.exit(1);
  }

  concurrency = maxConcurrency();
  if (concurrency > 1) {
    serveConcurrently();
    return;
  }
  process.on('beforeExit', onBeforeExit);
  process.on('uncaughtException', (err) => onCrash(err, false));
  process.on('unhandledRejection', (reason, promise) => onCrash(reason, true, promise));
  next(conn);
}

main();

'use strict';
// Preloaded into approuter (`node -r lib/token-spy.cjs …`) by the e2e tests:
// records every request approuter sends to <url>/oauth/token, and the
// answer, as one JSON line in $E2E_TOKEN_SPY_FILE. Approuter itself is
// unmodified; only node:https is wrapped, so the tests can check what went
// over the wire (code_verifier, Basic client authentication, app_tid=,
// refresh token rotation — xsuaa.md §10 checks 12 and 15). Secrets are
// recorded as fingerprints, except the single-use PKCE verifier.

const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const zlib = require('node:zlib');

const file = process.env.E2E_TOKEN_SPY_FILE;
const fingerprint = (v) => (v ? crypto.createHash('sha256').update(String(v)).digest('hex').slice(0, 16) : null);

function decode(res, buf) {
  try {
    switch (res.headers['content-encoding']) {
      case 'gzip': return zlib.gunzipSync(buf);
      case 'deflate': return zlib.inflateSync(buf);
      case 'br': return zlib.brotliDecompressSync(buf);
      default: return buf;
    }
  } catch {
    return buf;
  }
}

function record(req, sent, res, chunks) {
  const form = new URLSearchParams(Buffer.concat(sent).toString('utf8'));
  let json = {};
  try { json = JSON.parse(decode(res, Buffer.concat(chunks)).toString('utf8')); } catch { /* not JSON */ }
  const auth = String(req.getHeader('authorization') ?? '');
  const entry = {
    path: req.path,
    grant_type: form.get('grant_type'),
    client_auth: auth.startsWith('Basic ') ? 'basic' : form.has('client_secret') ? 'body' : 'none',
    basic_user: auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':')[0] : null,
    params: [...form.keys()],
    app_tid: form.has('app_tid') ? form.get('app_tid') : null,
    redirect_uri: form.get('redirect_uri'),
    code_verifier: form.get('code_verifier'),
    refresh_token: fingerprint(form.get('refresh_token')),
    status: res.statusCode,
    response_keys: Object.keys(json).sort(),
    response_scope: json.scope ?? null,
    response_expires_in: json.expires_in ?? null,
    response_access_token: fingerprint(json.access_token),
    response_refresh_token: fingerprint(json.refresh_token),
  };
  fs.appendFileSync(file, `${JSON.stringify(entry)}\n`);
}

if (file) {
  const original = https.request;
  https.request = function request(...args) {
    const req = original.apply(this, args);
    if (!String(req.path).startsWith('/oauth/token')) return req;
    const sent = [];
    const keep = (chunk) => {
      if (chunk && typeof chunk !== 'function') sent.push(Buffer.from(chunk));
    };
    const write = req.write;
    const end = req.end;
    req.write = function (chunk, ...rest) { keep(chunk); return write.call(this, chunk, ...rest); };
    req.end = function (chunk, ...rest) { keep(chunk); return end.call(this, chunk, ...rest); };
    req.on('response', (res) => {
      const chunks = [];
      const emit = res.emit;
      // Tee the body without consuming it: approuter reads the same events.
      res.emit = function (event, ...a) {
        if (event === 'data') chunks.push(Buffer.from(a[0]));
        if (event === 'end') record(req, sent, res, chunks);
        return emit.call(this, event, ...a);
      };
    });
    return req;
  };
}

// identity.md §8.2 check 19: authorization code + PKCE S256 over plain HTTP,
// as a browser and approuter drive it: /oauth2/authorize shows the login
// form, /login.do (CSRF double submit) sets the session cookie, the next
// /oauth2/authorize redirects with code and state, and /oauth2/token
// refuses a wrong code_verifier, a mismatched redirect_uri and a reused
// code. Also /oauth2/logout (§3.4).
//
// Check 20 (XsuaaService with an x509 binding: certurl over mTLS,
// token_keys?zid) is x509.test.mjs.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { IdentityService, createSecurityContext } from '@sap/xssec';

import {
  decodeJwt, newWorkspace, request, seedUsers,
} from './harness.mjs';

const ws = newWorkspace();
const { alice } = seedUsers;
const REDIRECT = 'https://app.example.com/login/callback';
const BYE = 'https://app.example.com/bye';

let creds;

/** The value of cookie name among a response's Set-Cookie headers. */
function cookie(res, name) {
  for (const c of [res.headers['set-cookie'] ?? []].flat()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    if (pair.slice(0, i).trim() === name) return pair.slice(i + 1);
  }
  return undefined;
}

/** Undoes html/template's attribute escaping. */
function unescapeHtml(s) {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replaceAll('&quot;', '"').replaceAll('&lt;', '<').replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

function hiddenField(html, name) {
  const m = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  assert.ok(m, `login form has no hidden field ${name}`);
  return unescapeHtml(m[1]);
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeUrl({ challenge, state = randomBytes(8).toString('hex'), redirectUri = REDIRECT, extra = {} }) {
  const q = new URLSearchParams({
    response_type: 'code', client_id: creds.clientid, redirect_uri: redirectUri, scope: 'openid', state,
    code_challenge: challenge, code_challenge_method: 'S256', ...extra,
  });
  return `${creds.authorization_endpoint}?${q}`;
}

/**
 * Logs alice in through the form and returns the broker_session cookie.
 * @returns {Promise<string>}
 */
async function login(user = alice) {
  const form = await request(authorizeUrl(pkce()));
  assert.equal(form.status, 200, form.text);
  assert.match(form.headers['content-type'], /^text\/html/);
  const csrf = cookie(form, 'broker_csrf');
  assert.ok(csrf, 'no broker_csrf cookie');
  const res = await request(new URL('/login.do', creds.url), {
    method: 'POST',
    headers: { cookie: `broker_csrf=${csrf}` },
    form: {
      username: user.username, password: user.password, csrf: hiddenField(form.text, 'csrf'), continue: hiddenField(form.text, 'continue'),
    },
  });
  assert.equal(res.status, 303, res.text);
  const session = cookie(res, 'broker_session');
  assert.ok(session, 'no broker_session cookie after login');
  return session;
}

/** Runs /oauth2/authorize with a session; resolves with the redirect's URL. */
async function authorize(session, opts) {
  const res = await request(authorizeUrl(opts), { headers: { cookie: `broker_session=${session}` } });
  assert.equal(res.status, 302, res.text);
  return new URL(res.headers.location);
}

/** A fresh code (and its PKCE verifier) for alice's session. */
async function newCode(session) {
  const p = pkce();
  const state = randomBytes(8).toString('hex');
  const back = await authorize(session, { challenge: p.challenge, state });
  assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
  assert.equal(back.searchParams.get('state'), state);
  const code = back.searchParams.get('code');
  assert.ok(code, `no code in ${back}`);
  return { code, verifier: p.verifier };
}

/** POST /oauth2/token as approuter does it: Basic and body secret, empty app_tid. */
function exchange(form) {
  return request(`${creds.url}/oauth2/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${creds.clientid}:${creds.clientsecret}`).toString('base64')}`,
      accept: 'application/json',
    },
    form: {
      grant_type: 'authorization_code', redirect_uri: REDIRECT, client_id: creds.clientid, client_secret: creds.clientsecret, app_tid: '', ...form,
    },
  });
}

function invalidGrant(res) {
  assert.equal(res.status, 400, res.text);
  assert.equal(res.json?.error, 'invalid_grant');
}

before(async () => {
  const inst = await ws.provision({
    'oauth2-configuration': { 'redirect-uris': [REDIRECT], 'post-logout-redirect-uris': [BYE] },
  }, { name: 'ias-web', offering: 'identity' });
  ({ credentials: creds } = await ws.bind(inst.id));
});

describe('check 19: authorization code + PKCE', () => {
  let session;

  test('login form: CSRF double submit; wrong password and missing CSRF are refused', async () => {
    const form = await request(authorizeUrl(pkce()));
    assert.equal(form.status, 200);
    const csrf = cookie(form, 'broker_csrf');
    const fields = {
      username: alice.username, password: `${alice.password}x`, csrf: hiddenField(form.text, 'csrf'), continue: hiddenField(form.text, 'continue'),
    };
    const wrong = await request(new URL('/login.do', creds.url), { method: 'POST', headers: { cookie: `broker_csrf=${csrf}` }, form: fields });
    assert.equal(wrong.status, 401);
    assert.equal(cookie(wrong, 'broker_session'), undefined);
    const noCsrf = await request(new URL('/login.do', creds.url), {
      method: 'POST', form: { ...fields, password: alice.password },
    });
    assert.equal(noCsrf.status, 403);
    assert.equal(cookie(noCsrf, 'broker_session'), undefined);
  });

  test('after login, /oauth2/authorize redirects to the redirect URI with code and state', async () => {
    session = await login();
    const { code } = await newCode(session);
    assert.ok(code.length >= 16);
  });

  test('prompt=none without a session → error=login_required at the redirect URI', async () => {
    const res = await request(authorizeUrl({ ...pkce(), extra: { prompt: 'none' } }));
    assert.equal(res.status, 302, res.text);
    const back = new URL(res.headers.location);
    assert.equal(back.searchParams.get('error'), 'login_required');
  });

  test('a redirect URI that is not registered is refused without a redirect', async () => {
    const res = await request(authorizeUrl({ ...pkce(), redirectUri: 'https://evil.example.com/cb' }),
      { headers: { cookie: `broker_session=${session}` } });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.headers.location, undefined);
  });

  test('a wrong code_verifier is refused', async () => {
    const { code } = await newCode(session);
    invalidGrant(await exchange({ code, code_verifier: pkce().verifier }));
  });

  test('a missing code_verifier is refused', async () => {
    const { code } = await newCode(session);
    invalidGrant(await exchange({ code }));
  });

  test('a mismatched redirect_uri is refused', async () => {
    const { code, verifier } = await newCode(session);
    invalidGrant(await exchange({ code, code_verifier: verifier, redirect_uri: 'https://app.example.com/other' }));
  });

  test('the right exchange → JWT access_token and id_token; the code cannot be reused', async () => {
    const nonce = randomBytes(8).toString('hex');
    const p = pkce();
    const back = await authorize(session, { challenge: p.challenge, extra: { nonce } });
    const code = back.searchParams.get('code');
    const res = await exchange({ code, code_verifier: p.verifier });
    assert.equal(res.status, 200, res.text);
    for (const k of ['access_token', 'id_token']) {
      assert.equal(res.json[k].split('.').length, 3, `${k} is not a JWT`);
    }
    assert.equal(typeof res.json.refresh_token, 'string');
    assert.ok(res.json.expires_in > 0);
    const id = decodeJwt(res.json.id_token).payload;
    assert.equal(id.nonce, nonce);
    assert.equal(id.email, alice.email);
    assert.equal(id.azp, creds.clientid);
    const service = new IdentityService(creds);
    const ctx = await createSecurityContext(service, { jwt: res.json.id_token });
    assert.equal(ctx.getEmail(), alice.email);
    await createSecurityContext(service, { jwt: res.json.access_token });

    invalidGrant(await exchange({ code, code_verifier: p.verifier }));
  });

  test("another client cannot redeem the client's code", async () => {
    const other = await ws.provision({}, { name: 'ias-web-other', offering: 'identity' });
    const { credentials: otherCreds } = await ws.bind(other.id);
    const { code, verifier } = await newCode(session);
    const res = await request(`${otherCreds.url}/oauth2/token`, {
      method: 'POST',
      form: {
        grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT,
        client_id: otherCreds.clientid, client_secret: otherCreds.clientsecret,
      },
    });
    invalidGrant(res);
  });
});

describe('/oauth2/logout', () => {
  test('redirects to a registered post_logout_redirect_uri and clears the session cookie', async () => {
    const q = new URLSearchParams({ client_id: creds.clientid, post_logout_redirect_uri: BYE, state: 's1' });
    const res = await request(`${creds.end_session_endpoint}?${q}`);
    assert.equal(res.status, 302, res.text);
    assert.ok(res.headers.location.startsWith(BYE), res.headers.location);
    assert.equal(cookie(res, 'broker_session'), '');
  });

  test('does not redirect to a target that is not registered', async () => {
    const q = new URLSearchParams({ client_id: creds.clientid, post_logout_redirect_uri: 'https://evil.example.com/' });
    const res = await request(`${creds.end_session_endpoint}?${q}`);
    assert.equal(res.headers.location, undefined);
    assert.equal(res.status, 200);
  });
});

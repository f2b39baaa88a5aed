// The broker's own login page in a real browser (sap-clients.md §4 L1–L7,
// §5 O2; xsuaa.md §10 checks 13 and 14): authorization code flow with state
// and PKCE, wrong and right passwords, the SSO session cookie, logout.do.
//
// Chromium trusts the broker's CA through an NSS database in its own HOME
// (harness.launchBrowser); no certificate error is ignored.

import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import { XsuaaService, createSecurityContext } from '@sap/xssec';

import {
  artifactsDir, decodeJwt, explained, launchBrowser, pkcePair, provisionAndBind, show, startRecorder, tokenRequest, users,
} from '../lib/harness.mjs';

const instanceName = 'e2e-login-uaa';

const xsSecurity = {
  xsappname: 'login_app',
  'tenant-mode': 'dedicated',
  scopes: [
    { name: '$XSAPPNAME.Display', description: 'display' },
    { name: '$XSAPPNAME.Admin', description: 'administer' },
  ],
  'role-templates': [
    { name: 'Viewer', 'scope-references': ['$XSAPPNAME.Display'] },
    { name: 'Administrator', 'scope-references': ['$XSAPPNAME.Admin'] },
  ],
  'role-collections': [{ name: 'Login Viewer', 'role-template-references': ['$XSAPPNAME.Viewer'] }],
  'oauth2-configuration': { 'redirect-uris': ['https://app.example.com/**'] },
};

describe('broker login page in Chromium', () => {
  let creds;
  let target; // the redirect_uri's server on 127.0.0.1
  let page;
  let redirectUri;
  // The state goes through URLs twice; characters that need encoding show
  // that it comes back verbatim (L4).
  const state = `s t&ä/=?${Math.random().toString(36).slice(2)}`;
  const pkce = pkcePair();
  let diagnostics; // explains blocked navigations (harness.launchBrowser)

  function authorizeUrl({ challenge = pkce.challenge, st = state, redirect = redirectUri } = {}) {
    const u = new URL('/oauth/authorize', creds.url);
    u.search = new URLSearchParams({
      response_type: 'code',
      client_id: creds.clientid,
      redirect_uri: redirect,
      state: st,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }).toString();
    return u.toString();
  }

  /** The requests to the redirect_uri (the browser also asks for /favicon.ico). */
  function callbacks() {
    return target.requests.filter((r) => new URL(r.url, target.url).pathname === '/callback');
  }

  /** The query of the last request to the redirect_uri. */
  function lastCallback() {
    return new URL(callbacks().at(-1).url, target.url).searchParams;
  }

  before(async () => {
    ({ credentials: creds } = await provisionAndBind({ instanceName, xsSecurity }));
    target = await startRecorder();
    redirectUri = `${target.url}/callback`;
    ({ page, diagnostics } = await launchBrowser('login'));
  });

  test('authorize shows the login form with the instance name (screenshot)', async () => {
    const res = await page.goto(authorizeUrl());
    assert.equal(res.status(), 200);
    assert.equal(new URL(page.url()).origin, new URL(creds.url).origin, 'the form is on the broker origin (L2)');
    assert.match(await page.title(), new RegExp(instanceName));
    assert.match(await page.locator('.card').innerText(), new RegExp(`to continue to\\s+${instanceName}`));
    // L2: one form, visible username and password fields, a submit button.
    assert.equal(await page.locator('form').count(), 1);
    assert.ok(await page.locator('form input[name="username"]').isVisible());
    assert.ok(await page.locator('form input[name="password"][type="password"]').isVisible());
    assert.ok(await page.locator('form button[type="submit"]').isVisible());
    assert.equal(await page.locator('#login-error').count(), 0, 'no error before the first attempt');
    await page.screenshot({ path: path.join(artifactsDir, 'login.png') });
  });

  test('a wrong password shows the form again with an error and no redirect (L5)', async () => {
    await page.fill('input[name="username"]', users.alice.username);
    await page.fill('input[name="password"]', 'not-the-password');
    const [res] = await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(res.status(), 401);
    assert.equal(new URL(page.url()).origin, new URL(creds.url).origin);
    assert.match(await page.locator('#login-error').innerText(), /wrong user name or password/i);
    assert.ok(await page.locator('input[name="password"]').isVisible(), 'the form is shown again');
    assert.equal(await page.inputValue('input[name="password"]'), '', 'the password is not echoed');
    assert.equal(callbacks().length, 0, 'the redirect_uri got nothing');
    await page.screenshot({ path: path.join(artifactsDir, 'login-error.png') });
  });

  let code;
  let refreshToken;
  test('the right password redirects to redirect_uri with a code and the same state (L4)', async () => {
    await page.fill('input[name="username"]', users.alice.username);
    await page.fill('input[name="password"]', users.alice.password);
    await Promise.all([
      explained(page.waitForURL(`${target.url}/**`), diagnostics),
      page.click('button[type="submit"]'),
    ]);
    assert.equal(callbacks().length, 1);
    const q = lastCallback();
    assert.equal(q.get('state'), state, 'state comes back verbatim');
    code = q.get('code');
    assert.ok(code, 'a code');
    assert.equal(q.get('error'), null);
  });

  test('the code (with code_verifier) gives a JWT with the user\'s scopes; it is single-use', async () => {
    const res = await tokenRequest(creds, {
      grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: pkce.verifier,
    });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.token_type, 'bearer');
    assert.ok(res.json.refresh_token, 'user grants return a refresh_token (T3)');
    refreshToken = res.json.refresh_token;
    const jwt = decodeJwt(res.json.access_token);
    const xsappname = creds.xsappname;
    assert.deepEqual([...jwt.scope].sort(), [`${xsappname}.Display`, 'openid'].sort(), 'Viewer only: Display, not Admin');
    assert.deepEqual(res.json.scope.split(' ').sort(), [...jwt.scope].sort(), 'response scope string = JWT scopes (T4)');
    assert.equal(jwt.grant_type, 'authorization_code');
    assert.equal(jwt.user_name, users.alice.username);
    assert.equal(jwt.email, users.alice.email);
    assert.equal(jwt.azp, creds.clientid);
    assert.equal(jwt.zid, creds.identityzoneid);
    // Role collections are zone-wide: the list also holds those that other
    // test files' instances declare, so only check for this one.
    assert.ok(jwt['xs.system.attributes']?.['xs.rolecollections']?.includes('Login Viewer'), JSON.stringify(jwt['xs.system.attributes']));
    // The unmodified xssec accepts it and sees the scope.
    const ctx = await createSecurityContext(new XsuaaService(creds), { jwt: res.json.access_token });
    assert.equal(ctx.checkLocalScope('Display'), true);
    assert.equal(ctx.checkLocalScope('Admin'), false);
    assert.equal(ctx.getLogonName(), users.alice.username);

    const again = await tokenRequest(creds, {
      grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: pkce.verifier,
    });
    assert.equal(again.status, 400, show(again));
    assert.equal(again.json.error, 'invalid_grant');
  });

  test('the refresh token works as approuter sends it (Basic, app_tid=) and rotates (T1, T5, check 15)', async () => {
    const first = await tokenRequest(creds, { grant_type: 'refresh_token', refresh_token: refreshToken, app_tid: '' }, { basic: true });
    assert.equal(first.status, 200, show(first));
    for (const k of ['access_token', 'expires_in', 'refresh_token']) assert.ok(first.json[k], `refresh response has ${k}`);
    assert.notEqual(first.json.refresh_token, refreshToken, 'a new refresh token');
    const jwt = decodeJwt(first.json.access_token);
    assert.equal(jwt.grant_type, 'authorization_code', 'the refreshed token keeps the original grant (J7)');
    assert.equal(jwt.user_name, users.alice.username);
    assert.ok(jwt.scope.includes(`${creds.xsappname}.Display`));

    const replay = await tokenRequest(creds, { grant_type: 'refresh_token', refresh_token: refreshToken, app_tid: '' }, { basic: true });
    // Refused: UAA answers 401 invalid_token "Invalid refresh token
    // (expired)" (xsuaa.md §5.4), RFC 6749 400 invalid_grant.
    assert.ok(
      (replay.status === 401 && replay.json?.error === 'invalid_token') || (replay.status === 400 && replay.json?.error === 'invalid_grant'),
      `the rotated-out refresh token is dead: ${show(replay)}`,
    );

    const second = await tokenRequest(creds, { grant_type: 'refresh_token', refresh_token: first.json.refresh_token });
    assert.equal(second.status, 200, `the new refresh token works, client in the body: ${show(second)}`);
  });

  test('a second authorize skips the form (session cookie) and PKCE is enforced on its code', async () => {
    const cookies = await page.context().cookies(creds.url);
    assert.ok(cookies.some((c) => c.name === 'broker_session' && c.secure && c.httpOnly), 'a Secure, HttpOnly session cookie');
    const st2 = 'second-state';
    const res = await page.goto(authorizeUrl({ st: st2 }));
    assert.equal(new URL(page.url()).origin, target.url, 'straight back to the app');
    const chain = [];
    for (let r = res.request(); r; r = r.redirectedFrom()) chain.unshift(new URL(r.url()).pathname);
    assert.deepEqual(chain, ['/oauth/authorize', '/callback'], 'no login page on the way');
    assert.equal(callbacks().length, 2);
    assert.equal(lastCallback().get('state'), st2);
    // Without the code_verifier the code of a PKCE authorize is refused (T9).
    const noVerifier = await tokenRequest(creds, { grant_type: 'authorization_code', code: lastCallback().get('code'), redirect_uri: redirectUri });
    assert.equal(noVerifier.status, 400, show(noVerifier));
    assert.equal(noVerifier.json.error, 'invalid_grant');

    // A wrong verifier is refused too.
    await page.goto(authorizeUrl({ st: 'third' }));
    const wrong = await tokenRequest(creds, {
      grant_type: 'authorization_code', code: lastCallback().get('code'), redirect_uri: redirectUri, code_verifier: pkcePair().verifier,
    });
    assert.equal(wrong.status, 400, show(wrong));
    assert.equal(wrong.json.error, 'invalid_grant');
  });

  test('authorize refuses an unregistered redirect_uri with an error page, never a redirect (L6, check 13)', async () => {
    const callbacksBefore = callbacks().length;
    const res = await page.goto(authorizeUrl({ redirect: 'https://evil.example.com/callback' }));
    assert.equal(res.status(), 400);
    assert.equal(res.request().redirectedFrom(), null);
    assert.equal(new URL(page.url()).origin, new URL(creds.url).origin);
    assert.match(await page.locator('body').innerText(), /redirect/i);
    assert.equal(callbacks().length, callbacksBefore);
  });

  test('logout.do ends the session and redirects to an allowed target (O2, check 14)', async () => {
    const bye = `${target.url}/bye`;
    const logout = new URL('/logout.do', creds.url);
    logout.search = new URLSearchParams({ redirect: bye, client_id: creds.clientid }).toString();
    await page.goto(logout.toString());
    assert.equal(page.url(), bye);
    const cookies = await page.context().cookies(creds.url);
    assert.ok(!cookies.some((c) => c.name === 'broker_session'), 'the session cookie is gone');

    // The next authorize asks for the password again.
    const res = await page.goto(authorizeUrl());
    assert.equal(res.status(), 200);
    assert.equal(new URL(page.url()).origin, new URL(creds.url).origin);
    assert.ok(await page.locator('input[name="password"]').isVisible(), 'the login form again');
  });

  test('logout.do does not redirect to a target that is neither registered nor localhost (O2, check 14)', async () => {
    const logout = new URL('/logout.do', creds.url);
    logout.search = new URLSearchParams({ redirect: 'https://evil.example.com/', client_id: creds.clientid }).toString();
    const res = await page.goto(logout.toString());
    assert.equal(res.status(), 200);
    assert.equal(res.request().redirectedFrom(), null);
    assert.equal(new URL(page.url()).origin, new URL(creds.url).origin);
    assert.match(await page.locator('body').innerText(), /signed out/i);
  });

  test('a registered non-localhost redirect pattern is accepted (L6, check 13)', async () => {
    const res = await page.goto(authorizeUrl({ redirect: 'https://app.example.com/deep/path/callback' }));
    assert.equal(res.status(), 200, 'the login form, not an error page');
    assert.ok(await page.locator('input[name="password"]').isVisible());
  });
});

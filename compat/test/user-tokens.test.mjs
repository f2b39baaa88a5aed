// xsuaa.md §10 check 4 (password grant for a user with and without roles),
// check 5 (jwt-bearer to a second client: scopes = the user's ∩ B's client
// scopes, §3.4), check 10 (granted-apps + foreign-scope-references: A's
// user token validates at B), the refresh grant as approuter sends it (§3.3:
// Basic + app_tid=, rotation), the legacy user_token grant (§3.5) and
// /userinfo (§8). Users come from the seed file (harness.mjs seedUsers):
// alice holds "UT Viewer" (declared by A) and "UT Partner" (declared by B),
// bob holds nothing. The tests in this file build on each other.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  XsuaaService, XsuaaSecurityContext, createSecurityContext, errors,
} from '@sap/xssec';

import {
  decodeJwt, newWorkspace, request, seedUsers,
} from './harness.mjs';

const ws = newWorkspace();
const { alice, bob } = seedUsers;

const A_APP = 'ut-app';
const B_APP = 'ut-partner';

/** A: Display for viewers (with uaa.user and the Country attribute), Admin for nobody. */
const appDescriptor = (partner = false) => ({
  xsappname: A_APP,
  scopes: [
    { name: '$XSAPPNAME.Display', description: 'display' },
    { name: '$XSAPPNAME.Admin', description: 'nobody holds it' },
  ],
  attributes: [{ name: 'Country', description: 'country', valueType: 's' }],
  'role-templates': [
    // The default US is what users without a Country of their own get.
    {
      name: 'Viewer',
      'scope-references': ['$XSAPPNAME.Display', 'uaa.user'],
      'attribute-references': [{ name: 'Country', 'default-values': ['US'] }],
    },
    { name: 'Admin', 'scope-references': ['$XSAPPNAME.Admin'] },
    // check 10: a role template of A that carries B's scope, which B
    // grants to A through granted-apps.
    ...(partner ? [{ name: 'PartnerReader', 'scope-references': [`$XSAPPNAME(application,${B_APP}).Read`] }] : []),
  ],
  ...(partner ? { 'foreign-scope-references': [`$XSAPPNAME(application,${B_APP}).Read`] } : {}),
  'role-collections': [
    { name: 'UT Viewer', 'role-template-references': ['$XSAPPNAME.Viewer', ...(partner ? ['$XSAPPNAME.PartnerReader'] : [])] },
  ],
});

/** B: Read granted to A's users, Write not granted. */
const partnerDescriptor = {
  xsappname: B_APP,
  scopes: [
    { name: '$XSAPPNAME.Read', description: 'A may carry it', 'granted-apps': [`$XSAPPNAME(application,${A_APP})`] },
    { name: '$XSAPPNAME.Write', description: 'not granted to anybody' },
  ],
  'role-templates': [
    { name: 'Reader', 'scope-references': ['$XSAPPNAME.Read'] },
    { name: 'Writer', 'scope-references': ['$XSAPPNAME.Write'] },
  ],
  'role-collections': [{ name: 'UT Partner', 'role-template-references': ['$XSAPPNAME.Writer'] }],
};

let a; // {id, name}
let credsA;
let credsB;
let serviceA;
let serviceB;
let aliceResponse; // alice's password token response at A
let aliceJwt;
let bobJwt;

/** xssec's ResponseError with the given status (and OAuth error code). */
function responseError(status, code) {
  return (err) => {
    assert.ok(err instanceof errors.ResponseError, `expected ResponseError, got ${err.constructor.name}: ${err.message}`);
    assert.equal(err.responseCode, status, err.responseText);
    if (code) assert.equal(JSON.parse(err.responseText).error, code);
    return true;
  };
}

function wrongAudience(err) {
  assert.ok(err instanceof errors.WrongAudienceError, `expected WrongAudienceError, got ${err.constructor.name}: ${err.message}`);
  return true;
}

/** POST /oauth/token the way approuter does: Basic, raw id:secret, app_tid= (§3.3). */
function tokenRequest(creds, form, headers = {}) {
  const basic = Buffer.from(`${creds.clientid}:${creds.clientsecret}`).toString('base64');
  return request(`${creds.url}/oauth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, accept: 'application/json', ...headers },
    form,
  });
}

before(async () => {
  // A first without the partner template: B's granted-apps names A, and A's
  // reference to B needs B, so A gets it by an update.
  a = await ws.provision(appDescriptor(false), { name: 'ut-app-uaa' });
  const b = await ws.provision(partnerDescriptor, { name: 'ut-partner-uaa' });
  await ws.update(a.id, appDescriptor(true));
  ({ credentials: credsA } = await ws.bind(a.id));
  ({ credentials: credsB } = await ws.bind(b.id));
  serviceA = new XsuaaService(credsA);
  serviceB = new XsuaaService(credsB);
  aliceResponse = await serviceA.fetchPasswordToken(alice.username, alice.password);
  aliceJwt = aliceResponse.access_token;
  bobJwt = (await serviceA.fetchPasswordToken(bob.username, bob.password)).access_token;
});

describe('check 4: fetchPasswordToken', () => {
  test('response: access_token, id_token, refresh_token, scope (§3.2)', () => {
    assert.equal(aliceResponse.token_type.toLowerCase(), 'bearer');
    assert.ok(aliceResponse.expires_in > 0);
    assert.equal(typeof aliceResponse.refresh_token, 'string');
    assert.equal(typeof aliceResponse.id_token, 'string');
    const { payload } = decodeJwt(aliceJwt);
    assert.deepEqual(aliceResponse.scope.split(' ').sort(), [...payload.scope].sort());
    const id = decodeJwt(aliceResponse.id_token).payload;
    assert.deepEqual(id.aud, [credsA.clientid]);
    assert.equal(id.user_name, alice.username);
  });

  test('alice (role collection "UT Viewer"): scopes, user data, attributes', async () => {
    const ctx = await createSecurityContext(serviceA, { jwt: aliceJwt });
    assert.ok(ctx instanceof XsuaaSecurityContext, `got ${ctx.constructor.name}`);
    assert.equal(ctx.checkLocalScope('Display'), true);
    assert.equal(ctx.checkLocalScope('Admin'), false);
    assert.equal(ctx.checkScope('openid'), true);
    assert.equal(ctx.checkScope('uaa.user'), true);
    assert.equal(ctx.getLogonName(), alice.username);
    assert.equal(ctx.getEmail(), alice.email);
    assert.equal(ctx.getGivenName(), alice.given_name);
    assert.equal(ctx.getFamilyName(), alice.family_name);
    // alice's own value, not the template's default.
    assert.deepEqual(ctx.getAttribute('Country'), ['DE']);
    assert.equal(ctx.getGrantType(), 'password');
    assert.equal(ctx.getOrigin(), 'sap.default');
    assert.equal(ctx.getUserName(), `user/sap.default/${alice.username}`);
    assert.equal(ctx.getClientId(), credsA.clientid);
    assert.equal(ctx.getZoneId(), credsA.identityzoneid);
    assert.equal(ctx.getSubdomain(), credsA.identityzone);
    const { payload } = decodeJwt(aliceJwt);
    assert.equal(payload.azp, credsA.clientid);
    assert.equal(payload.user_id, payload.sub);
    assert.equal(typeof payload.auth_time, 'number');
    assert.ok(payload['xs.system.attributes']['xs.rolecollections'].includes('UT Viewer'));
    assert.ok(payload.aud.includes(credsA.xsappname), `aud ${JSON.stringify(payload.aud)}`);
  });

  test('bob (no role collections): validation succeeds, checkLocalScope is false', async () => {
    const ctx = await createSecurityContext(serviceA, { jwt: bobJwt });
    assert.ok(ctx instanceof XsuaaSecurityContext);
    assert.equal(ctx.checkLocalScope('Display'), false);
    assert.equal(ctx.checkLocalScope('Admin'), false);
    assert.equal(ctx.getLogonName(), bob.username);
    assert.equal(ctx.getEmail(), bob.email);
    assert.deepEqual(decodeJwt(bobJwt).payload.scope, ['openid']);
  });

  test('{scope} narrows; a client scope the user does not hold → 400 invalid_scope (§3.2)', async () => {
    const x = credsA.xsappname;
    const narrowed = await serviceA.fetchPasswordToken(alice.username, alice.password, { scope: `${x}.Display` });
    assert.deepEqual(decodeJwt(narrowed.access_token).payload.scope, [`${x}.Display`]);
    await assert.rejects(serviceA.fetchPasswordToken(alice.username, alice.password, { scope: `${x}.Admin` }), responseError(400, 'invalid_scope'));
    await assert.rejects(serviceA.fetchPasswordToken(alice.username, alice.password, { scope: `${x}.NoSuchScope` }), responseError(400, 'invalid_scope'));
  });

  test('a wrong password is refused with 401', async () => {
    await assert.rejects(serviceA.fetchPasswordToken(alice.username, `${alice.password}x`), responseError(401));
    await assert.rejects(serviceA.fetchPasswordToken('nobody', 'x'), responseError(401));
  });
});

describe('check 5: fetchJwtBearerToken with a second client (B)', () => {
  test("alice's token of A → B's token: azp = B, scopes = alice's ∩ B's client scopes", async () => {
    const res = await serviceB.fetchJwtBearerToken(aliceJwt);
    const { payload } = decodeJwt(res.access_token);
    assert.equal(payload.azp, credsB.clientid);
    assert.equal(payload.cid, credsB.clientid);
    assert.equal(payload.grant_type, 'urn:ietf:params:oauth:grant-type:jwt-bearer');
    assert.equal(payload.user_name, alice.username);
    // Alice holds A.Display, uaa.user (A's template), B.Read (through A's
    // PartnerReader) and B.Write ("UT Partner"); B's client has openid and
    // its own scopes only.
    const x = credsB.xsappname;
    assert.deepEqual([...payload.scope].sort(), ['openid', `${x}.Read`, `${x}.Write`].sort());
    const ctx = await createSecurityContext(serviceB, { jwt: res.access_token });
    assert.equal(ctx.getClientId(), credsB.clientid);
    assert.equal(ctx.checkLocalScope('Read'), true);
    assert.equal(ctx.checkLocalScope('Write'), true);
    assert.equal(ctx.getLogonName(), alice.username);
    assert.equal(ctx.getEmail(), alice.email);
    // ... and it is not a token for A.
    await assert.rejects(createSecurityContext(serviceA, { jwt: res.access_token }), wrongAudience);
  });

  test("bob's token → only openid at B", async () => {
    const res = await serviceB.fetchJwtBearerToken(bobJwt);
    const { payload } = decodeJwt(res.access_token);
    assert.equal(payload.azp, credsB.clientid);
    assert.deepEqual(payload.scope, ['openid']);
  });

  test('an assertion with a broken signature is refused', async () => {
    const forged = `${aliceJwt.slice(0, -4)}AAAA`;
    await assert.rejects(serviceB.fetchJwtBearerToken(forged), (err) => {
      assert.ok(err instanceof errors.ResponseError, `got ${err.constructor.name}`);
      assert.ok(err.responseCode === 400 || err.responseCode === 401, err.responseText);
      return true;
    });
  });
});

describe('check 10: granted-apps + foreign-scope-references', () => {
  test("alice's user token of A carries B's Read and validates at B", async () => {
    const { payload } = decodeJwt(aliceJwt);
    const read = `${credsB.xsappname}.Read`;
    assert.ok(payload.scope.includes(read), `scope ${JSON.stringify(payload.scope)} lacks ${read}`);
    // Write is B's too, and alice holds it, but B did not grant it to A.
    assert.ok(!payload.scope.includes(`${credsB.xsappname}.Write`));
    assert.ok(payload.aud.includes(credsB.xsappname), `aud ${JSON.stringify(payload.aud)}`);
    const atB = await createSecurityContext(serviceB, { jwt: aliceJwt });
    assert.equal(atB.checkLocalScope('Read'), true);
    assert.equal(atB.checkLocalScope('Write'), false);
    assert.equal(atB.getClientId(), credsA.clientid);
    assert.equal(atB.getLogonName(), alice.username);
  });

  test("bob's token of A does not reach B", async () => {
    await assert.rejects(createSecurityContext(serviceB, { jwt: bobJwt }), wrongAudience);
  });
});

describe('refresh_token grant (approuter style, §3.3)', () => {
  test('Basic + app_tid=: new tokens, rotation, the old refresh token is refused', async () => {
    const login = await serviceA.fetchPasswordToken(alice.username, alice.password);
    const first = login.refresh_token;
    const res = await tokenRequest(credsA, { grant_type: 'refresh_token', refresh_token: first, app_tid: '' });
    assert.equal(res.status, 200, res.text);
    for (const k of ['access_token', 'expires_in', 'refresh_token']) assert.ok(res.json[k], `${k} missing`);
    assert.notEqual(res.json.refresh_token, first);
    const { payload } = decodeJwt(res.json.access_token);
    const original = decodeJwt(login.access_token).payload;
    // A refresh keeps the grant type of the original login, its aud and
    // (being the same login) its auth_time; the jti is new.
    assert.equal(payload.grant_type, 'password');
    assert.deepEqual([...payload.aud].sort(), [...original.aud].sort());
    assert.equal(payload.auth_time, original.auth_time);
    assert.notEqual(payload.jti, original.jti);
    const ctx = await createSecurityContext(serviceA, { jwt: res.json.access_token });
    assert.equal(ctx.checkLocalScope('Display'), true);
    assert.equal(ctx.getLogonName(), alice.username);

    const reused = await tokenRequest(credsA, { grant_type: 'refresh_token', refresh_token: first, app_tid: '' });
    assert.equal(reused.status, 401, reused.text);
    // The rotated one works once.
    const next = await tokenRequest(credsA, { grant_type: 'refresh_token', refresh_token: res.json.refresh_token, app_tid: '' });
    assert.equal(next.status, 200, next.text);
  });

  test("another client cannot redeem A's refresh token", async () => {
    const { refresh_token: rt } = await serviceA.fetchPasswordToken(alice.username, alice.password);
    const res = await tokenRequest(credsB, { grant_type: 'refresh_token', refresh_token: rt, app_tid: '' });
    assert.equal(res.status, 401, res.text);
    // Not consumed by the failed attempt.
    const own = await tokenRequest(credsA, { grant_type: 'refresh_token', refresh_token: rt, app_tid: '' });
    assert.equal(own.status, 200, own.text);
  });
});

describe('user_token grant (legacy, §3.5) and /userinfo', () => {
  test("alice's token (uaa.user) → a refresh token only B can redeem", async () => {
    const res = await request(`${credsA.url}/oauth/token`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceJwt}`, accept: 'application/json' },
      form: { grant_type: 'user_token', client_id: credsB.clientid, token_format: 'jwt' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.access_token, null);
    assert.equal(typeof res.json.refresh_token, 'string');
    const atB = await tokenRequest(credsB, { grant_type: 'refresh_token', refresh_token: res.json.refresh_token });
    assert.equal(atB.status, 200, atB.text);
    const ctx = await createSecurityContext(serviceB, { jwt: atB.json.access_token });
    assert.equal(ctx.getClientId(), credsB.clientid);
    assert.equal(ctx.getLogonName(), alice.username);
    assert.equal(ctx.checkLocalScope('Read'), true);
  });

  test('a token without uaa.user is refused', async () => {
    const res = await request(`${credsA.url}/oauth/token`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bobJwt}`, accept: 'application/json' },
      form: { grant_type: 'user_token', client_id: credsB.clientid },
    });
    assert.ok(res.status === 401 || res.status === 403, `${res.status} ${res.text}`);
  });

  test('/userinfo answers for the user of the token', async () => {
    const res = await request(`${credsA.url}/userinfo`, { headers: { authorization: `Bearer ${aliceJwt}` } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user_name, alice.username);
    assert.equal(res.json.email, alice.email);
    assert.equal(res.json.given_name, alice.given_name);
    assert.equal(res.json.family_name, alice.family_name);
    assert.equal(res.json.sub, decodeJwt(aliceJwt).payload.user_id);
    const anonymous = await request(`${credsA.url}/userinfo`);
    assert.equal(anonymous.status, 401, anonymous.text);
  });
});

// xsuaa.md §10 check 3 (client_credentials with xssec, token shape §4.2,
// scopes §3.1 / sap-clients.md T7) and check 7 (x-zid routing, scope
// narrowing, az_attr).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';
import {
  XsuaaService, XsuaaSecurityContext, createSecurityContext, errors,
} from '@sap/xssec';

import { decodeJwt, newWorkspace, request } from './harness.mjs';

const ws = newWorkspace();

let creds;
let service;
let response; // the token endpoint's JSON answer
let jwt;
let claims;
let header;

before(async () => {
  const { id } = await ws.provision({
    xsappname: 'cc-app',
    scopes: [
      { name: '$XSAPPNAME.Display', description: 'display' },
      { name: '$XSAPPNAME.Write', description: 'write' },
      { name: '$XSAPPNAME.Admin', description: 'user-only scope, not an authority' },
    ],
    authorities: ['$XSAPPNAME.Display', '$XSAPPNAME.Write'],
    'role-templates': [
      { name: 'Admin', 'scope-references': ['$XSAPPNAME.Admin', '$XSAPPNAME.Display'] },
    ],
  }, { name: 'cc-app-uaa' });
  ({ credentials: creds } = await ws.bind(id));
  service = new XsuaaService(creds);
  response = await service.fetchClientCredentialsToken();
  jwt = response.access_token;
  ({ header, payload: claims } = decodeJwt(jwt));
});

describe('check 3: fetchClientCredentialsToken + createSecurityContext', () => {
  test('token response (§5.4)', () => {
    assert.equal(typeof jwt, 'string');
    assert.equal(response.token_type.toLowerCase(), 'bearer');
    assert.equal(typeof response.expires_in, 'number');
    assert.ok(response.expires_in > 0);
    assert.equal(typeof response.scope, 'string');
    // The response scope string is the token's scope list, space-separated.
    assert.deepEqual(response.scope.split(' ').sort(), [...claims.scope].sort());
  });

  test('security context: XsuaaSecurityContext, user name, zone, subdomain', async () => {
    const ctx = await createSecurityContext(service, { jwt });
    assert.ok(ctx instanceof XsuaaSecurityContext, `got ${ctx.constructor.name}`);
    assert.equal(ctx.getUserName(), `client/${creds.clientid}`);
    assert.equal(ctx.getClientId(), creds.clientid);
    assert.equal(ctx.getSubdomain(), creds.identityzone);
    assert.equal(ctx.getZoneId(), creds.identityzoneid);
    assert.equal(ctx.getAppTID(), creds.identityzoneid);
    assert.equal(ctx.getSubaccountId(), creds.subaccountid);
    assert.equal(ctx.getGrantType(), 'client_credentials');
    // Technical tokens carry no user data.
    assert.equal(ctx.getLogonName(), null);
    assert.equal(ctx.getEmail(), null);
  });

  test('checkLocalScope is true for each declared authority, false for user-only scopes', async () => {
    const ctx = await createSecurityContext(service, { jwt });
    assert.equal(ctx.checkLocalScope('Display'), true);
    assert.equal(ctx.checkLocalScope('Write'), true);
    // $XSAPPNAME.Admin is a scope of the app but not in `authorities`: a CC
    // token must not carry it (sap-clients.md T7).
    assert.equal(ctx.checkLocalScope('Admin'), false);
    assert.equal(ctx.checkScope('uaa.resource'), true);
  });

  test('header: RS256 with a kid that the JWKS serves', async () => {
    assert.equal(header.alg, 'RS256');
    assert.equal(typeof header.kid, 'string');
    assert.ok(header.kid.length > 0);
    const res = await request(`https://${creds.uaadomain}/token_keys?zid=${claims.zid}`);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.json.keys.some((k) => k.kid === header.kid));
  });

  test('claims (§4.2, §3.7)', () => {
    const x = creds.xsappname;
    assert.ok(Array.isArray(claims.scope), 'scope must be an array');
    assert.deepEqual([...claims.scope].sort(), ['uaa.resource', `${x}.Display`, `${x}.Write`].sort());
    assert.ok(Array.isArray(claims.authorities), 'authorities must be an array');
    assert.deepEqual([...claims.authorities].sort(), [...claims.scope].sort());
    assert.ok(Array.isArray(claims.aud), 'aud must be an array');
    assert.deepEqual([...claims.aud].sort(), [creds.clientid, x, 'uaa'].sort());
    for (const k of ['cid', 'azp', 'client_id', 'sub']) assert.equal(claims[k], creds.clientid, k);
    assert.equal(claims.grant_type, 'client_credentials');
    assert.equal(claims.zid, creds.identityzoneid);
    assert.equal(claims.ext_attr?.enhancer, 'XSUAA');
    assert.equal(claims.ext_attr?.zdn, creds.identityzone);
    assert.match(claims.jti, /^[0-9a-f]{32}$/);
    assert.equal(typeof claims.exp, 'number');
    assert.equal(typeof claims.iat, 'number');
    assert.ok(claims.exp > claims.iat);
    assert.ok(response.expires_in <= claims.exp - claims.iat);
    // A client_credentials token carries no user claims (§3.1).
    for (const k of ['user_name', 'user_id', 'origin', 'email', 'auth_time']) {
      assert.equal(claims[k], undefined, k);
    }
  });

  test('each fetch gets a fresh jti', async () => {
    const again = decodeJwt((await service.fetchClientCredentialsToken()).access_token).payload;
    assert.notEqual(again.jti, claims.jti);
  });

  test('a wrong client secret is refused with 401 (sap-clients.md T6)', async () => {
    const bad = new XsuaaService({ ...creds, clientsecret: `${creds.clientsecret}x` });
    await assert.rejects(bad.fetchClientCredentialsToken(), (err) => {
      assert.ok(err instanceof errors.ResponseError, `got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.responseCode, 401);
      return true;
    });
  });

  test('HTTP Basic client authentication works as well (T1)', async () => {
    // clientid:clientsecret raw, not URL-encoded, as approuter sends it.
    const basic = Buffer.from(`${creds.clientid}:${creds.clientsecret}`).toString('base64');
    const res = await request(`${creds.url}/oauth/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, accept: 'application/json' },
      form: { grant_type: 'client_credentials' },
    });
    assert.equal(res.status, 200, res.text);
    const ctx = await createSecurityContext(service, { jwt: res.json.access_token });
    assert.equal(ctx.checkLocalScope('Display'), true);
  });
});

describe('check 7: token request options', () => {
  test('{zid}: x-zid routing on the bare uaadomain', async () => {
    const res = await service.fetchClientCredentialsToken({ zid: creds.identityzoneid });
    const { payload } = decodeJwt(res.access_token);
    assert.equal(payload.zid, creds.identityzoneid);
    assert.equal(payload.azp, creds.clientid);
    const ctx = await createSecurityContext(service, { jwt: res.access_token });
    assert.equal(ctx.getZoneId(), creds.identityzoneid);
    assert.equal(ctx.checkLocalScope('Display'), true);
  });

  test('{zid} of an unknown zone is refused', async () => {
    await assert.rejects(service.fetchClientCredentialsToken({ zid: randomUUID() }), (err) => {
      assert.ok(err instanceof errors.ResponseError, `got ${err.constructor.name}: ${err.message}`);
      assert.ok(err.responseCode >= 400 && err.responseCode < 500, `status ${err.responseCode}`);
      return true;
    });
  });

  test('{scope} narrows the token to exactly that scope', async () => {
    const wanted = `${creds.xsappname}.Display`;
    const res = await service.fetchClientCredentialsToken({ scope: wanted });
    assert.equal(res.scope, wanted);
    const { payload } = decodeJwt(res.access_token);
    assert.deepEqual(payload.scope, [wanted]);
    const ctx = await createSecurityContext(service, { jwt: res.access_token });
    assert.equal(ctx.checkLocalScope('Display'), true);
    assert.equal(ctx.checkLocalScope('Write'), false);
    assert.equal(ctx.checkScope('uaa.resource'), false);
  });

  test('{scope} that is not an authority → 400 invalid_scope (§3.1)', async () => {
    await assert.rejects(service.fetchClientCredentialsToken({ scope: `${creds.xsappname}.Admin` }), (err) => {
      assert.ok(err instanceof errors.ResponseError, `got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.responseCode, 400);
      assert.equal(JSON.parse(err.responseText).error, 'invalid_scope');
      return true;
    });
  });

  test('{authorities} lands in az_attr', async () => {
    const res = await service.fetchClientCredentialsToken({ authorities: { k: 'v', tenant: 't1' } });
    const { payload } = decodeJwt(res.access_token);
    assert.equal(payload.az_attr?.k, 'v');
    assert.equal(payload.az_attr?.tenant, 't1');
    const ctx = await createSecurityContext(service, { jwt: res.access_token });
    assert.equal(ctx.getAdditionalAuthAttribute('k'), 'v');
    assert.equal(ctx.getAdditionalAuthAttribute('tenant'), 't1');
    // Without the option there is no az_attr.
    assert.equal(claims.az_attr, undefined);
  });

  test('token_format=jwt and an empty app_tid are accepted (T2)', async () => {
    const res = await request(`${creds.url}/oauth/token`, {
      method: 'POST',
      headers: { accept: 'application/json' },
      form: {
        grant_type: 'client_credentials', client_id: creds.clientid, client_secret: creds.clientsecret,
        token_format: 'jwt', app_tid: '',
      },
    });
    assert.equal(res.status, 200, res.text);
    await createSecurityContext(service, { jwt: res.json.access_token });
  });
});

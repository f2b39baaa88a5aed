// @sap/cds 10 (on Node 22) with auth kind "xsuaa", bound to the broker
// through VCAP_SERVICES (xsuaa.md §7, §10 check 16; sap-clients.md §8).
// The app is cap/: CatalogService @requires 'Display', WhoAmIService
// @requires 'authenticated-user' with a handler that reports cds.context.

import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import {
  decodeJwt, e2eRoot, freePort, node22, provisionAndBind, request, show, startChild, tokenRequest, users, waitFor,
} from '../lib/harness.mjs';

const xsSecurity = {
  xsappname: 'bookshop_cap',
  'tenant-mode': 'dedicated',
  scopes: [{ name: '$XSAPPNAME.Display', description: 'display' }],
  attributes: [{ name: 'Country', valueType: 'string', valueRequired: false }],
  'role-templates': [{
    name: 'Viewer',
    'scope-references': ['$XSAPPNAME.Display'],
    'attribute-references': [{ name: 'Country' }],
  }],
  'role-collections': [{ name: 'CAP Viewer', 'role-template-references': ['$XSAPPNAME.Viewer'] }],
};

describe('CAP (@sap/cds, auth kind xsuaa) with broker tokens', () => {
  let creds;
  let base;
  let cap;
  const tokens = {};

  before(async () => {
    let vcapServices;
    ({ credentials: creds, vcapServices } = await provisionAndBind({ instanceName: 'e2e-cap-uaa', xsSecurity }));
    const port = await freePort();
    cap = startChild('cds', node22, [path.join(e2eRoot, 'node_modules', '@sap', 'cds', 'bin', 'serve.js')], {
      cwd: path.join(e2eRoot, 'cap'),
      env: { ...process.env, NODE_ENV: 'production', PORT: String(port), VCAP_SERVICES: vcapServices },
    });
    base = `http://127.0.0.1:${port}`;
    // Up once the protected function answers 401 to a request without a token.
    await waitFor(`${base}/odata/v4/catalog/hello()`, (r) => r.status === 401, { alive: cap.alive, describe: cap.log });

    const password = async (user) => {
      const res = await tokenRequest(creds, { grant_type: 'password', username: user.username, password: user.password });
      assert.equal(res.status, 200, show(res));
      return res.json.access_token;
    };
    tokens.alice = await password(users.alice);
    tokens.bob = await password(users.bob);
    const cc = await tokenRequest(creds, { grant_type: 'client_credentials' });
    assert.equal(cc.status, 200, show(cc));
    tokens.cc = cc.json.access_token;
  });

  const get = (p, token) => request(`${base}${p}`, {
    headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  const whoami = async (token) => {
    const res = await get('/odata/v4/whoami/whoami()', token);
    assert.equal(res.status, 200, `${show(res)}\n${cap.log(20)}`);
    return JSON.parse(res.json.value);
  };

  test('a user token with the Display scope → 200', async () => {
    assert.ok(decodeJwt(tokens.alice).scope.includes(`${creds.xsappname}.Display`));
    const res = await get('/odata/v4/catalog/hello()', tokens.alice);
    assert.equal(res.status, 200, `${show(res)}\n${cap.log(20)}`);
    assert.equal(res.json.value, `hello ${users.alice.username}`);
  });

  test('a user token without the scope → 403', async () => {
    assert.deepEqual(decodeJwt(tokens.bob).scope, ['openid']);
    const res = await get('/odata/v4/catalog/hello()', tokens.bob);
    assert.equal(res.status, 403, show(res));
  });

  test('no token → 401; an invalid token → 401', async () => {
    assert.equal((await get('/odata/v4/catalog/hello()')).status, 401);
    // One changed character in the signature (C4: a ValidationError is 401, not 500).
    const [h, p, s] = tokens.alice.split('.');
    const flipped = `${h}.${p}.${s[0] === 'A' ? 'B' : 'A'}${s.slice(1)}`;
    const bad = await get('/odata/v4/catalog/hello()', flipped);
    assert.equal(bad.status, 401, show(bad));
    const garbage = await get('/odata/v4/catalog/hello()', 'not-a-jwt');
    assert.equal(garbage.status, 401, show(garbage));
  });

  test('cds maps alice: id = user_name, role Display, tenant = zid, attributes', async (t) => {
    const me = await whoami(tokens.alice);
    t.diagnostic(`cds.context for alice: ${JSON.stringify(me)}`);
    assert.equal(me.id, users.alice.username);
    assert.equal(me.tenant, creds.identityzoneid);
    assert.equal(me.tenant, decodeJwt(tokens.alice).zid);
    assert.ok(me.roles.includes('Display'), JSON.stringify(me.roles));
    assert.ok(!me.roles.includes('system-user'));
    assert.deepEqual(me.attr.Country, ['DE', 'FR']);
    assert.equal(me.attr.email, users.alice.email);
  });

  test('a client_credentials token of the same binding → user "system", internal-user, tenant = zid; no Display (T7)', async (t) => {
    const jwt = decodeJwt(tokens.cc);
    assert.equal(jwt.grant_type, 'client_credentials');
    assert.equal(jwt.azp, creds.clientid);
    const me = await whoami(tokens.cc);
    t.diagnostic(`cds.context for the client_credentials token: ${JSON.stringify(me)}`);
    assert.equal(me.id, 'system');
    assert.equal(me.tenant, creds.identityzoneid);
    assert.equal(me.tenant, jwt.zid);
    assert.ok(me.roles.includes('system-user'), JSON.stringify(me.roles));
    assert.ok(me.roles.includes('internal-user'), JSON.stringify(me.roles));
    assert.equal(me.reqUserIsContextUser, true);
    const res = await get('/odata/v4/catalog/hello()', tokens.cc);
    assert.equal(res.status, 403, show(res));
  });
});

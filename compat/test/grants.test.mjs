// xsuaa.md §10 check 9: grant-as-authority-to-apps in both directions
// (§2.3, §2.7, §3.1): app "orders" (B) grants $XSAPPNAME.Callback to "jobs"
// (A), which accepts all granted authorities; then A grants Trigger to B by
// service instance name and B accepts it explicitly. The tests in this file
// build on each other and run in order.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { XsuaaService, createSecurityContext, errors } from '@sap/xssec';

import { decodeJwt, newWorkspace } from './harness.mjs';

const ws = newWorkspace();

const A_NAME = 'jobs-uaa';
const B_NAME = 'orders-uaa';

const jobsDescriptor = (extraScopes = []) => ({
  xsappname: 'jobs',
  scopes: [{ name: '$XSAPPNAME.Run', description: 'own scope, not an authority' }, ...extraScopes],
  authorities: ['$ACCEPT_GRANTED_AUTHORITIES'],
});

const ordersDescriptor = (authorities) => ({
  xsappname: 'orders',
  scopes: [
    { name: '$XSAPPNAME.Callback', description: 'jobs may call us', 'grant-as-authority-to-apps': ['$XSAPPNAME(application,jobs)'] },
    { name: '$XSAPPNAME.Internal', description: 'granted to nobody' },
  ],
  ...(authorities ? { authorities } : {}),
});

let a; // {id, name}
let b;
let serviceA;
let serviceB;
let credsA;
let credsB;

async function ccToken(service) {
  const jwt = (await service.fetchClientCredentialsToken()).access_token;
  return { jwt, claims: decodeJwt(jwt).payload };
}

before(async () => {
  // A first: B's grant references A, and references to missing instances
  // are refused.
  a = await ws.provision(jobsDescriptor(), { name: A_NAME });
  b = await ws.provision(ordersDescriptor(), { name: B_NAME });
  ({ credentials: credsA } = await ws.bind(a.id));
  ({ credentials: credsB } = await ws.bind(b.id));
  serviceA = new XsuaaService(credsA);
  serviceB = new XsuaaService(credsB);
});

describe('check 9: grant-as-authority-to-apps', () => {
  test('references to instances that do not exist are refused with 400', async () => {
    const { res: r1 } = await ws.provision({
      xsappname: 'grants-bad-1',
      scopes: [{ name: '$XSAPPNAME.X', 'grant-as-authority-to-apps': ['$XSAPPNAME(application,no-such-app)'] }],
    }, { expectStatus: 400 });
    assert.match(r1.json?.description ?? '', /no-such-app/);
    const { res: r2 } = await ws.provision({
      xsappname: 'grants-bad-2',
      scopes: [{ name: '$XSAPPNAME.X', 'grant-as-authority-to-apps': ['$XSSERVICENAME(no-such-instance)'] }],
    }, { expectStatus: 400 });
    assert.match(r2.json?.description ?? '', /no-such-instance/);
  });

  test("orders → jobs: A's token carries orders!t<n>.Callback and validates at B", async () => {
    const { jwt, claims } = await ccToken(serviceA);
    const callback = `${credsB.xsappname}.Callback`;
    assert.match(credsB.xsappname, /^orders!t\d+$/);
    assert.ok(claims.scope.includes(callback), `scope ${JSON.stringify(claims.scope)} lacks ${callback}`);
    assert.ok(!claims.scope.includes(`${credsB.xsappname}.Internal`), 'a scope that was not granted leaked');
    // A's own scope is not in its authorities.
    assert.ok(!claims.scope.includes(`${credsA.xsappname}.Run`));
    assert.ok(claims.aud.includes(credsB.xsappname), `aud ${JSON.stringify(claims.aud)}`);

    const atB = await createSecurityContext(serviceB, { jwt });
    assert.equal(atB.checkLocalScope('Callback'), true);
    assert.equal(atB.checkLocalScope('Internal'), false);
    assert.equal(atB.getClientId(), credsA.clientid);
    // ... and A's own service still accepts its token.
    await createSecurityContext(serviceA, { jwt });
  });

  test('jobs → orders by $XSSERVICENAME: granted but not yet accepted → not in B\'s token', async () => {
    await ws.update(a.id, jobsDescriptor([
      { name: '$XSAPPNAME.Trigger', description: 'orders may trigger jobs', 'grant-as-authority-to-apps': [`$XSSERVICENAME(${B_NAME})`] },
    ]));
    const { jwt, claims } = await ccToken(serviceB);
    assert.ok(!claims.scope.includes(`${credsA.xsappname}.Trigger`),
      `B has no authorities yet, but its token has ${JSON.stringify(claims.scope)}`);
    await refusedAt(serviceA, jwt);
  });

  test("jobs → orders: once B accepts it, B's token validates at A with Trigger", async () => {
    await ws.update(b.id, ordersDescriptor(['$XSAPPNAME(application,jobs).Trigger']));
    const { jwt, claims } = await ccToken(serviceB);
    const trigger = `${credsA.xsappname}.Trigger`;
    assert.ok(claims.scope.includes(trigger), `scope ${JSON.stringify(claims.scope)} lacks ${trigger}`);
    assert.ok(claims.aud.includes(credsA.xsappname), `aud ${JSON.stringify(claims.aud)}`);
    const atA = await createSecurityContext(serviceA, { jwt });
    assert.equal(atA.checkLocalScope('Trigger'), true);
    assert.equal(atA.checkLocalScope('Run'), false);
    // The first direction is unaffected by the updates.
    const fromA = await ccToken(serviceA);
    assert.ok(fromA.claims.scope.includes(`${credsB.xsappname}.Callback`));
  });

  test("after B is deleted, a new A token no longer carries B's scope", async () => {
    assert.equal(await ws.deprovision(b.id), 200);
    const { jwt, claims } = await ccToken(serviceA);
    assert.ok(!claims.scope.some((s) => s.startsWith(`${credsB.xsappname}.`)),
      `scope ${JSON.stringify(claims.scope)} still holds a scope of the deleted instance`);
    assert.ok(!claims.aud.includes(credsB.xsappname), `aud ${JSON.stringify(claims.aud)}`);
    // B's credentials (kept by an app that was not restaged) no longer
    // accept A's new token.
    await refusedAt(serviceB, jwt);
  });
});

async function refusedAt(service, jwt) {
  await assert.rejects(createSecurityContext(service, { jwt }), (err) => {
    assert.ok(err instanceof errors.WrongAudienceError, `expected WrongAudienceError, got ${err.constructor.name}: ${err.message}`);
    return true;
  });
}

// xsuaa.md §10 check 6: tokens xssec must refuse (§4.5), each with the
// error class xssec 4.15 raises for it. Every refusal is a ValidationError
// with statusCode 401.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, test } from 'node:test';
import { XsuaaService, createSecurityContext, errors } from '@sap/xssec';

import { decodeJwt, newWorkspace, tamperJwt } from './harness.mjs';

const ws = newWorkspace();

let service;  // instance "neg-a"
let serviceB; // instance "neg-b"
let jwt;      // CC token of neg-a
let claims;

/** Asserts that createSecurityContext(svc, {jwt: token}) fails with errorClass. */
async function refuses(svc, token, errorClass, check) {
  await assert.rejects(createSecurityContext(svc, { jwt: token }), (err) => {
    assert.ok(err instanceof errorClass,
      `expected ${errorClass.name}, got ${err.constructor.name}: ${err.message}`);
    assert.equal(err.constructor.name, errorClass.name);
    assert.ok(err instanceof errors.ValidationError, 'a refusal must be a ValidationError');
    assert.equal(err.statusCode, 401);
    check?.(err);
    return true;
  });
}

before(async () => {
  const a = await ws.provision({
    xsappname: 'neg-a', scopes: [{ name: '$XSAPPNAME.Read' }], authorities: ['$XSAPPNAME.Read'],
  }, { name: 'neg-a-uaa' });
  const b = await ws.provision({
    xsappname: 'neg-b', scopes: [{ name: '$XSAPPNAME.Read' }], authorities: ['$XSAPPNAME.Read'],
  }, { name: 'neg-b-uaa' });
  service = new XsuaaService((await ws.bind(a.id)).credentials);
  serviceB = new XsuaaService((await ws.bind(b.id)).credentials);
  jwt = (await service.fetchClientCredentialsToken()).access_token;
  claims = decodeJwt(jwt).payload;
  // Sanity: the untouched token is accepted, so each refusal below is caused
  // by the one thing the test changes.
  const ctx = await createSecurityContext(service, { jwt });
  assert.equal(ctx.checkLocalScope('Read'), true);
});

test('expired: clock past exp + 60 s leeway → ExpiredTokenError', async (t) => {
  t.mock.method(Date, 'now', () => claims.exp * 1000 + 61_000);
  await refuses(service, jwt, errors.ExpiredTokenError);
});

test('still valid one second before exp (exp is honest, numeric seconds)', async (t) => {
  t.mock.method(Date, 'now', () => claims.exp * 1000 - 1000);
  const ctx = await createSecurityContext(service, { jwt });
  assert.equal(ctx.getClientId(), claims.azp);
});

test("another instance's token → WrongAudienceError", async () => {
  await refuses(serviceB, jwt, errors.WrongAudienceError);
  // ... and the other way round.
  const jwtB = (await serviceB.fetchClientCredentialsToken()).access_token;
  await refuses(service, jwtB, errors.WrongAudienceError);
});

test('altered payload with the original signature → InvalidTokenSignatureError', async () => {
  const forged = tamperJwt(jwt, {
    payload: (p) => ({ ...p, scope: [...p.scope, `${p.cid.slice(3)}.Admin`] }),
  });
  await refuses(service, forged, errors.InvalidTokenSignatureError);
});

test('altered signature → InvalidTokenSignatureError', async () => {
  const [h, p, s] = jwt.split('.');
  const sig = Buffer.from(s, 'base64url');
  sig[sig.length - 1] ^= 0x01;
  await refuses(service, [h, p, sig.toString('base64url')].join('.'), errors.InvalidTokenSignatureError);
});

test('header kid unknown to the JWKS → MissingKidError', async () => {
  // xssec 4.15 looks the kid up in the JWKS (Jwks.get) before it checks the
  // signature, so an unknown kid raises MissingKidError ("JWKS does not
  // contain a key for kid=…"), not a signature error.
  const kid = `unknown-${randomUUID()}`;
  const forged = tamperJwt(jwt, { header: (h) => ({ ...h, kid }) });
  await refuses(service, forged, errors.MissingKidError, (err) => {
    assert.match(err.message, new RegExp(kid));
  });
});

test('header without kid → MissingKidError', async () => {
  const forged = tamperJwt(jwt, { header: ({ kid, ...h }) => h });
  await refuses(service, forged, errors.MissingKidError);
});

test('payload zid of an unknown zone → WrongAudienceError from the JWKS 400', async () => {
  const forged = tamperJwt(jwt, { payload: (p) => ({ ...p, zid: randomUUID() }) });
  await refuses(service, forged, errors.WrongAudienceError, (err) => {
    // Not the audience rule (aud is untouched) but the JWKS answering 400.
    assert.match(err.message, /JWKS endpoint .* responded with 400/);
  });
});

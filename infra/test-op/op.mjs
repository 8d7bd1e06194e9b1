// A tenant's "Okta" for the end-to-end suites: oidc-provider 8.8.1 (OpenID Certified) on
// loopback, one provider per issuer path, each with its own RSA signing key.
//
// Configuration (environment):
//   OP_PORT    port on 127.0.0.1 (0 = any free port)
//   OP_CONFIG  JSON: {"issuers":[{"prefix":"/t1","kid":"k1","clients":[{client_id, client_secret,
//              redirect_uris, post_logout_redirect_uris?, backchannel_logout_uri?}]}]}
// Prints one line `READY {"port":N,"issuers":[...]}` on stdout when listening.
//
// Test controls (loopback only, outside the issuer paths):
//   POST /admin/mutate-next-id-token?prefix=/t1&mutation=M  the next token response of that
//        issuer carries an ID token altered by M: aud | iss | nonce | expired | alg_none |
//        bad_signature | unknown_key | other_issuer_key | azp (another client's) | iat_future
//   POST /admin/backchannel-logout?prefix=/t1&client_id=C&sub=S[&sid=X]  a real OIDC
//        Back-Channel Logout POST from the provider to the client
//   POST /admin/sign?prefix=/t1[&key=other]  body {"header":{...},"payload":{...}}: a JWT
//        signed with that issuer's key (or a key no JWKS publishes)
//   POST /admin/account?prefix=/t1&id=LOGIN  body {claims}: the account signing in as LOGIN
//        gets these claims instead of the defaults (a key set to null is left out), e.g.
//        {"email":"\u212aate@acme.test","email_verified":false}
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';

const config = JSON.parse(process.env.OP_CONFIG || '{"issuers":[]}');
const requestedPort = Number(process.env.OP_PORT || 0);

const providers = new Map(); // prefix -> { provider, callback, key, jwk, issuer, mutation, accounts }
const stranger = await generateKeyPair('RS256', { extractable: true }); // published nowhere

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e && e.stack || e));
  });
});
await new Promise((resolve) => server.listen(requestedPort, '127.0.0.1', resolve));
const port = server.address().port;

for (const entry of config.issuers) {
  const prefix = entry.prefix;
  const issuer = `http://127.0.0.1:${port}${prefix}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: entry.kid, alg: 'RS256', use: 'sig' };
  const state = { issuer, key: privateKey, jwk, mutation: null, accounts: new Map() };
  const clients = entry.clients.map((c) => ({
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...(c.backchannel_logout_uri ? { backchannel_logout_session_required: true } : {}),
    ...c,
  }));
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [jwk] },
    cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    },
    conformIdTokenClaims: false, // scope claims in the ID token, as Okta's org server does
    features: {
      devInteractions: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: { required: () => true },
    async findAccount(ctx, id) {
      const email = id.includes('@') ? id : `${id}@acme.test`;
      const local = email.split('@')[0];
      const given = local.split(/[._-]/)[0] || local;
      const defaults = {
        sub: id,
        email,
        email_verified: true,
        name: `${given} Tester`,
        given_name: given,
        family_name: 'Tester',
        preferred_username: email,
      };
      const merged = { ...defaults, ...(state.accounts.get(id) || {}) };
      for (const [k, v] of Object.entries(merged)) if (v === null) delete merged[k];
      return {
        accountId: id,
        async claims() {
          return merged;
        },
      };
    },
    // Admin-assigned apps show no consent screen at Okta: grant the requested scopes.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/token' && state.mutation && ctx.body && ctx.body.id_token) {
      const m = state.mutation;
      state.mutation = null;
      ctx.body = { ...ctx.body, id_token: await mutate(ctx.body.id_token, m, state) };
    }
  });
  state.provider = provider;
  state.callback = provider.callback();
  providers.set(prefix, state);
}

async function sign(header, payload, key) {
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

async function mutate(token, mutation, state) {
  const header = decodeProtectedHeader(token);
  const payload = decodeJwt(token);
  const now = Math.floor(Date.now() / 1000);
  switch (mutation) {
    case 'aud': return sign(header, { ...payload, aud: 'some-other-client' }, state.key);
    case 'iss': return sign(header, { ...payload, iss: `${state.issuer}-evil` }, state.key);
    case 'nonce': return sign(header, { ...payload, nonce: 'not-the-nonce-we-sent' }, state.key);
    case 'azp': return sign(header, { ...payload, azp: 'another-client' }, state.key);
    case 'iat_future': return sign(header, { ...payload, iat: now + 86400, exp: now + 90000 }, state.key);
    case 'expired': return sign(header, { ...payload, iat: now - 7200, exp: now - 3600 }, state.key);
    case 'alg_none': return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
    case 'bad_signature': {
      const [h, p, s] = token.split('.');
      const flipped = (s[5] === 'A' ? 'B' : 'A');
      return `${h}.${p}.${s.slice(0, 5)}${flipped}${s.slice(6)}`;
    }
    case 'unknown_key': return sign({ ...header, kid: 'published-nowhere' }, payload, stranger.privateKey);
    case 'other_issuer_key': {
      const other = [...providers.values()].find((p) => p !== state);
      if (!other) throw new Error('other_issuer_key needs a second issuer');
      return sign({ ...header, kid: other.jwk.kid }, payload, other.key);
    }
    default: throw new Error(`unknown mutation ${mutation}`);
  }
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

async function handle(req, res) {
  const url = new URL(req.url, `http://127.0.0.1:${port}`);
  if (url.pathname.startsWith('/admin/')) {
    const state = providers.get(url.searchParams.get('prefix') || '');
    if (!state) return res.writeHead(404).end('unknown prefix');
    if (req.method === 'POST' && url.pathname === '/admin/mutate-next-id-token') {
      state.mutation = url.searchParams.get('mutation');
      return res.writeHead(204).end();
    }
    if (req.method === 'POST' && url.pathname === '/admin/backchannel-logout') {
      const client = await state.provider.Client.find(url.searchParams.get('client_id'));
      if (!client) return res.writeHead(404).end('unknown client');
      try {
        await client.backchannelLogout(url.searchParams.get('sub'), url.searchParams.get('sid') || undefined);
        return res.writeHead(204).end();
      } catch (e) {
        return res.writeHead(502).end(String(e.message));
      }
    }
    if (req.method === 'POST' && url.pathname === '/admin/account') {
      state.accounts.set(url.searchParams.get('id'), JSON.parse(await readBody(req)));
      return res.writeHead(204).end();
    }
    if (req.method === 'POST' && url.pathname === '/admin/sign') {
      const { header, payload } = JSON.parse(await readBody(req));
      const key = url.searchParams.get('key') === 'other' ? stranger.privateKey : state.key;
      const jwt = header.alg === 'none'
        ? `${b64(header)}.${b64(payload)}.`
        : await sign({ kid: state.jwk.kid, ...header }, payload, key);
      return res.writeHead(200, { 'content-type': 'text/plain' }).end(jwt);
    }
    return res.writeHead(404).end();
  }
  // Longest prefix first, so '/t1' does not shadow '/t10'.
  const prefixes = [...providers.keys()].sort((a, b) => b.length - a.length);
  for (const prefix of prefixes) {
    if (url.pathname === prefix || url.pathname.startsWith(`${prefix}/`)) {
      const state = providers.get(prefix);
      req.originalUrl = req.url;
      req.url = req.url.slice(prefix.length) || '/';
      return state.callback(req, res);
    }
  }
  res.writeHead(404).end();
}

process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
console.log(`READY ${JSON.stringify({ port, issuers: [...providers.values()].map((p) => p.issuer) })}`);

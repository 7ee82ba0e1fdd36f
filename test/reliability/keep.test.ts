/**
 * What the security review found held and must keep holding, for the items
 * the rest of the suite did not (or only partly) test: bracketed and repeated
 * query parameters, encoded separators and traversal in the path, gzip,
 * chunked bodies over the limit and CL+TE smuggling (on the real server
 * process, over raw sockets), auth before any body or content-type check,
 * claim types and spellings (exp, role, iss), content-type variants, ~4,500
 * deterministically fuzzed tokens, 400 parallel writes to one user,
 * ReDoS-sized inputs, and no stack trace in any answer. Every hostile request
 * that could write is followed by a look at the stored data.
 */
import type { LightMyRequestResponse } from 'fastify'
import { once } from 'node:events'
import { createHmac } from 'node:crypto'
import net from 'node:net'
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib'
import { ObjectId } from 'mongodb'
import t, { type Test } from 'tap'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { startStandalone, type StandaloneServer } from '../server/helper-server.js'
import { build, createSigner, injectEveryOperation, phoneNumbersUrl, seedFixture, eventsSettled, settledSnapshot, TEST_SECRET } from '../helper.js'

// One server process, a few thousand in-process requests, 400 serialized writes.
t.setTimeout(120_000)

/** The contract's `error` titles, written out here rather than imported from the plugin. */
const TITLES: Record<number, string> = {
  400: 'Validation error',
  401: 'Unauthorized',
  403: 'Forbidden',
  413: 'Payload too large',
  415: 'Unsupported media type',
  500: 'Internal server error'
}

/** A JavaScript or Node stack frame, a source location, or a serialized `stack`. */
const STACK_TRACE = /\n\s*at |\bat (?:async )?\S+ \(|node:internal|node_modules|\.[cm]?[jt]s:\d+|"stack"/

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const nowSeconds = (): number => Math.floor(Date.now() / 1000)

/** HS256 over exactly these header and payload texts (raw JSON, so 1e400 or duplicate keys survive). */
function signText (header: string, payload: string, key: string = TEST_SECRET): string {
  const unsigned = `${b64(header)}.${b64(payload)}`
  return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`
}

const snapshot = settledSnapshot

/** Why an answer is not the contract's `{ error, details }` with one of `allowed` and no stack, or undefined. */
function contractProblem (status: number, text: string, allowed: readonly number[]): string | undefined {
  if (!allowed.includes(status)) return `status ${status}, expected ${allowed.join('/')}`
  if (STACK_TRACE.test(text)) return 'a stack trace in the body'
  let body: unknown
  try { body = JSON.parse(text) } catch { return 'not JSON' }
  if (typeof body !== 'object' || body === null) return 'not an object'
  const keys = Object.keys(body).sort().join(',')
  if (keys !== 'details,error') return `keys ${keys}`
  const { error, details } = body as Record<string, unknown>
  if (typeof details !== 'string' || details === '') return 'details is not a non-empty string'
  if (TITLES[status] !== undefined && error !== TITLES[status]) return `error ${JSON.stringify(error)} for ${status}`
  return undefined
}

function assertContractError (t: Test, name: string, response: { statusCode: number, body: string }, allowed: readonly number[]): void {
  const problem = contractProblem(response.statusCode, response.body, allowed)
  t.equal(problem, undefined, `${name}: ${response.statusCode} ${response.body.slice(0, 160)}`)
}

/** Seeded PRNG (mulberry32): the fuzzed tokens are the same on every run. */
function prng (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('repeated query parameters are refused; bracketed ones are unknown keys, ignored (never an operator, never a filter)', async (t) => {
  const { app, fixture, headers } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  for (const [userId, provider, phoneNumber] of [[fixture.userId, 'twilio', '+14165550001'], [fixture.userId, 'sinch', '+14165550002'], [fixture.otherUserId, 'twilio', '+14165550003']] as const) {
    const response = await app.inject({ method: 'POST', url, headers, payload: { targetUserId: userId, provider, phoneNumber } })
    t.equal(response.statusCode, 200, `seed ${provider} ${phoneNumber}`)
  }
  const numbersOf = (response: LightMyRequestResponse): string[] => (response.json().phoneNumbers as Array<{ phoneNumber: string }>).map((entry) => entry.phoneNumber).sort()
  const list = async (query: string): Promise<LightMyRequestResponse> => await app.inject({ method: 'GET', url: `${url}${query}`, headers })
  const all = numbersOf(await list(''))
  const twilio = numbersOf(await list('?provider=twilio'))
  const sinch = numbersOf(await list('?provider=sinch'))
  const ofUser = numbersOf(await list(`?targetUserId=${fixture.userId}`))
  t.same(all, ['+14165550001', '+14165550002', '+14165550003'], 'unfiltered')
  t.same(twilio, ['+14165550001', '+14165550003'], 'twilio only')
  t.same(sinch, ['+14165550002'], 'sinch only')

  const refused: Array<[string, RegExp]> = [
    ['?provider=twilio&provider=sinch', /querystring\/provider must be string/],
    ['?provider=twilio&provider=twilio', /querystring\/provider must be string/],
    ['?provider=sinch&provider=', /querystring\/provider must be string/],
    [`?targetUserId=${fixture.userId}&targetUserId=${fixture.otherUserId}`, /querystring\/targetUserId must be string/],
    [`?targetUserId=${fixture.userId}&targetUserId=${fixture.userId}`, /querystring\/targetUserId must be string/],
    [`?provider=twilio&targetUserId=${fixture.userId}&provider=sinch&targetUserId=${fixture.userId}`, /querystring\/(provider|targetUserId) must be string/]
  ]
  for (const [query, details] of refused) {
    const response = await list(query)
    assertContractError(t, query, response, [400])
    t.match(response.json().details, details, `${query}: names the parameter`)
  }

  // [query, the list it must equal]: a bracketed key is a different, unknown key.
  const ignored: Array<[string, string[]]> = [
    ['?provider[]=twilio', all],
    ['?provider[]=twilio&provider[]=sinch', all],
    ['?provider[$ne]=x', all],
    ['?provider[$ne]=twilio', all],
    ['?provider[$in][]=sinch', all],
    ['?provider[0]=sinch', all],
    ['?provider%5B%5D=sinch', all],
    ['?provider%5B%24ne%5D=twilio', all],
    [`?targetUserId[]=${fixture.otherUserId}`, all],
    [`?targetUserId[$ne]=${fixture.userId}`, all],
    ['?targetUserId[$exists]=true&provider[$regex]=.*', all],
    ['?provider=sinch&provider[]=twilio', sinch],
    ['?provider[$ne]=sinch&provider=twilio', twilio],
    [`?targetUserId=${fixture.userId}&targetUserId[$ne]=${fixture.userId}`, ofUser]
  ]
  for (const [query, expected] of ignored) {
    const response = await list(query)
    t.equal(response.statusCode, 200, `${query}: 200`)
    t.same(numbersOf(response), expected, `${query}: the same list as without the bracketed key`)
  }
})

t.test('authentication comes before any body or content-type check: 401 (or 403) whatever the body', async (t) => {
  const { app, db, fixture, sign } = await build(t)
  const before = await snapshot(db)
  const valid = JSON.stringify({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' })
  const expired = signText(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), JSON.stringify({ sub: fixture.adminId, role: 'SUPERADMIN', exp: nowSeconds() - 60 }))
  const callers: Array<[string, Record<string, string>, number]> = [
    ['no Authorization header', {}, 401],
    ['a garbage bearer token', { authorization: 'Bearer not.a.token' }, 401],
    ['an expired SUPERADMIN token', { authorization: `Bearer ${expired}` }, 401],
    ['a token signed with another key', { authorization: `Bearer ${signText(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), JSON.stringify({ sub: fixture.adminId, role: 'SUPERADMIN', exp: nowSeconds() + 600 }), 'another-key-another-key-another-key-another')}` }, 401],
    ['a valid AGENT token', { authorization: `Bearer ${sign({ sub: fixture.userId, role: 'AGENT' })}` }, 403]
  ]
  const boundary = '----keep'
  // [name, path, headers, payload]: each would be 400, 413 or 415 for an authenticated caller.
  const requests: Array<[string, string, Record<string, string>, string | Buffer]> = [
    ['malformed JSON', phoneNumbersUrl(fixture.organizationId), { 'content-type': 'application/json' }, '{"targetUserId":'],
    ['empty JSON body', phoneNumbersUrl(fixture.organizationId), { 'content-type': 'application/json' }, ''],
    ['text/plain', phoneNumbersUrl(fixture.organizationId), { 'content-type': 'text/plain' }, valid],
    ['form-urlencoded', phoneNumbersUrl(fixture.organizationId), { 'content-type': 'application/x-www-form-urlencoded' }, `targetUserId=${fixture.userId}&provider=twilio&phoneNumber=%2B14165550102`],
    ['multipart/form-data', phoneNumbersUrl(fixture.organizationId), { 'content-type': `multipart/form-data; boundary=${boundary}` }, `--${boundary}\r\nContent-Disposition: form-data; name="targetUserId"\r\n\r\n${fixture.userId}\r\n--${boundary}--\r\n`],
    ['JSON without a content type', phoneNumbersUrl(fixture.organizationId), {}, Buffer.from(valid)],
    ['charset=utf-16', phoneNumbersUrl(fixture.organizationId), { 'content-type': 'application/json; charset=utf-16' }, valid],
    ['gzip-encoded body', phoneNumbersUrl(fixture.organizationId), { 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync(valid)],
    ['body over the 16 KiB limit', phoneNumbersUrl(fixture.organizationId), { 'content-type': 'application/json' }, JSON.stringify({ ...JSON.parse(valid), note: 'x'.repeat(20_000) })],
    ['invalid fields', phoneNumbersUrl(fixture.organizationId), { 'content-type': 'application/json' }, JSON.stringify({ targetUserId: { $ne: null }, provider: 'nexmo', phoneNumber: 12 })],
    ['invalid organization id in the path', phoneNumbersUrl('not-an-id'), { 'content-type': 'application/json' }, valid]
  ]
  for (const [callerName, authHeaders, status] of callers) {
    for (const [requestName, url, requestHeaders, payload] of requests) {
      for (const method of ['POST', 'DELETE'] as const) {
        const name = `${method} ${requestName}, ${callerName}`
        const response = await app.inject({ method, url, headers: { ...requestHeaders, ...authHeaders }, payload })
        assertContractError(t, name, response, [status])
        t.notMatch(response.json().details, /body|params|querystring|content-type|media type|too large|targetUserId|phoneNumber|provider/i, `${name}: nothing about the request's body or schema`)
      }
    }
  }
  t.same(await snapshot(db), before, 'nothing written')
})

t.test('exp of a wrong type, in the past, or not finite: 401', async (t) => {
  const { app, db, fixture } = await build(t)
  const before = await snapshot(db)
  const url = phoneNumbersUrl(fixture.organizationId)
  const header = JSON.stringify({ alg: 'HS256', typ: 'JWT' })
  const claims = `"sub":"${fixture.adminId}","role":"SUPERADMIN"`
  const tokenWithExp = (exp: string): string => signText(header, `{${claims},"exp":${exp}}`)
  const post = async (token: string): Promise<LightMyRequestResponse> => await app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' }
  })

  // [name, exp as raw JSON]
  const wrong: Array<[string, string]> = [
    ['a numeric string', JSON.stringify(String(nowSeconds() + 600))],
    ['an exponent string', '"1e10"'],
    ['an empty string', '""'],
    ['"NaN"', '"NaN"'],
    ['"Infinity"', '"Infinity"'],
    ['null', 'null'],
    ['true', 'true'],
    ['false', 'false'],
    ['an array holding a future time', `[${nowSeconds() + 600}]`],
    ['an empty array', '[]'],
    ['an object', `{"$gt":${nowSeconds()}}`],
    ['an empty object', '{}'],
    ['negative', '-1'],
    ['negative, not finite (-1e400)', '-1e400'],
    ['zero', '0'],
    ['minus zero', '-0'],
    ['a denormal that reads as 0 (1e-400)', '1e-400'],
    ['a float in the past', `${nowSeconds() - 600}.5`],
    ['a float one second in the past', `${nowSeconds() - 1}.001`]
  ]
  for (const [name, exp] of wrong) assertContractError(t, `exp ${name} (${exp})`, await post(tokenWithExp(exp)), [401])
  t.equal((await post(tokenWithExp(`${nowSeconds() + 600}`))).statusCode, 200, 'control: the same token with a plain future exp is accepted')
  await eventsSettled(db)
  await db.collection('users').updateOne({ _id: new ObjectId(fixture.userId) }, { $unset: { phoneNumbers: '', phoneNumbersRevision: '', phoneNumbersOutbox: '' } })
  t.same(await snapshot(db), before, 'nothing written by a refused token')

  t.test('huge and non-finite exp values are refused once a token lifetime is configured', async (t) => {
    const limited = await build(t, { auth: { secret: TEST_SECRET, maxLifetimeSeconds: 3600 } })
    const limitedBefore = await snapshot(limited.db)
    for (const exp of ['1e400', '1e300', '9007199254740993', '1.7976931348623157e308', `${nowSeconds() + 3700}`, `${nowSeconds() + 3700}.5`]) {
      const response = await limited.app.inject({ method: 'POST', url: phoneNumbersUrl(limited.fixture.organizationId), headers: { authorization: `Bearer ${signText(header, `{"sub":"${limited.fixture.adminId}","role":"SUPERADMIN","exp":${exp}}`)}`, 'content-type': 'application/json' }, payload: { targetUserId: limited.fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' } })
      assertContractError(t, `exp ${exp} with maxLifetimeSeconds 3600`, response, [401])
    }
    t.same(await snapshot(limited.db), limitedBefore, 'nothing written')
  })

  t.test('an exp that JSON reads as Infinity (1e400) is refused by default: this API accepts only tokens that expire', async (t) => {
    const response = await post(tokenWithExp('1e400'))
    assertContractError(t, 'exp 1e400, default options', response, [401])
    if (response.statusCode === 200) {
      await eventsSettled(db)
      await db.collection('users').updateOne({ _id: new ObjectId(fixture.userId) }, { $unset: { phoneNumbers: '', phoneNumbersRevision: '', phoneNumbersOutbox: '' } })
    }
  })
})

t.test('role spellings, look-alikes and shapes other than the exact string SUPERADMIN: 403, nothing written', async (t) => {
  const { app, db, fixture, sign } = await build(t)
  const before = await snapshot(db)
  const url = phoneNumbersUrl(fixture.organizationId)
  const spellings: Array<[string, Record<string, unknown>]> = [
    ['lower case', { role: 'superadmin' }],
    ['mixed case', { role: 'SuperAdmin' }],
    ['leading space', { role: ' SUPERADMIN' }],
    ['trailing space', { role: 'SUPERADMIN ' }],
    ['trailing tab', { role: 'SUPERADMIN\t' }],
    ['trailing newline', { role: 'SUPERADMIN\n' }],
    ['Cyrillic DZE for S', { role: '\u0405UPERADMIN' }],
    ['Cyrillic A for A', { role: 'SUPER\u0410DMIN' }],
    ['Greek capital alpha and Cyrillic EM', { role: 'SUPER\u0391D\u041CIN' }],
    ['fullwidth', { role: '\uFF33\uFF35\uFF30\uFF25\uFF32\uFF21\uFF24\uFF2D\uFF29\uFF2E' }],
    ['Turkish dotted capital I', { role: 'SUPERADM\u0130N' }],
    ['zero-width space inside', { role: 'SUPER\u200BADMIN' }],
    ['zero-width joiner inside', { role: 'SUPER\u200DADMIN' }],
    ['zero-width space at the end', { role: 'SUPERADMIN\u200B' }],
    ['byte order mark first', { role: '\uFEFFSUPERADMIN' }],
    ['soft hyphen inside', { role: 'SUPER\u00ADADMIN' }],
    ['NUL at the end', { role: 'SUPERADMIN\u0000' }],
    ['combining mark', { role: 'SUPERADMIN\u0301' }],
    ['two roles in one string', { role: 'SUPERADMIN,AGENT' }],
    ['as an array', { role: ['SUPERADMIN'] }],
    ['as an object', { role: { name: 'SUPERADMIN' } }],
    ['as true', { role: true }],
    ['as null', { role: null }],
    ['roles array when the default predicate reads role', { roles: ['SUPERADMIN'] }],
    ['roles string', { roles: 'SUPERADMIN' }],
    ['Role with a capital R', { Role: 'SUPERADMIN' }],
    ['ROLE in capitals', { ROLE: 'SUPERADMIN' }],
    ['nested under realm_access', { realm_access: { roles: ['SUPERADMIN'] } }]
  ]
  for (const [name, claims] of spellings) {
    const authorization = `Bearer ${sign({ sub: fixture.adminId, ...claims })}`
    const answers = await injectEveryOperation(app, url, { authorization, 'content-type': 'application/json' }, { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' })
    for (const [method, response] of answers) assertContractError(t, `${method} role ${name}`, response, [403])
  }
  // A raw payload: JSON.parse makes __proto__ an own key, never the prototype.
  const protoToken = signText(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), `{"sub":"${fixture.adminId}","__proto__":{"role":"SUPERADMIN"},"exp":${nowSeconds() + 600}}`)
  assertContractError(t, 'role only under __proto__', await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${protoToken}` } }), [403])
  t.same(await snapshot(db), before, 'nothing written')
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}` } })).statusCode, 200, 'control: the exact spelling is accepted')
})

t.test('a configured issuer is matched exactly: prefixes, suffixes, case, slashes and other types are 401', async (t) => {
  const issuer = 'https://id.example'
  const { app, db, fixture, sign } = await build(t, { auth: { secret: TEST_SECRET, issuer } })
  const before = await snapshot(db)
  const url = phoneNumbersUrl(fixture.organizationId)
  const variants: unknown[] = [
    'https://id.example.evil', 'https://id.example.evil.com', 'https://id.example@evil.example', 'https://id.example#', 'https://id.example?',
    'HTTPS://ID.EXAMPLE', 'https://ID.example', 'Https://id.example',
    'https://id.example/', 'https://id.example//', 'https://id.example:443', 'http://id.example', 'id.example',
    'https://id.exampl', 'https://id.', 'https://', '',
    ' https://id.example', 'https://id.example ', 'https://id.example\u0000', 'https://id.example\n', 'https://id.ex\u0430mple',
    ['https://id.example'], ['https://evil.example', 'https://id.example'], { iss: 'https://id.example' }, null, 1, true
  ]
  for (const iss of variants) {
    const response = await app.inject({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${sign({ sub: fixture.adminId, role: 'SUPERADMIN', iss })}`, 'content-type': 'application/json' },
      payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' }
    })
    assertContractError(t, `iss ${JSON.stringify(iss)}`, response, [401])
  }
  t.same(await snapshot(db), before, 'nothing written')
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${sign({ sub: fixture.adminId, role: 'SUPERADMIN', iss: issuer })}` } })).statusCode, 200, 'control: the exact issuer is accepted')
})

t.test('content types: JSON in any letter case is parsed; other media types and a missing type are 415 and store nothing', async (t) => {
  const { app, fixture, authorization, phoneNumbersOf } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  let n = 0
  const attempt = async (headers: Record<string, string>, transform: (json: string) => string | Buffer = (json) => json): Promise<{ response: LightMyRequestResponse, phoneNumber: string }> => {
    const phoneNumber = `+1416555${String(1000 + n++)}`
    const json = JSON.stringify({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber, isDefault: false })
    return { response: await app.inject({ method: 'POST', url, headers: { authorization, ...headers }, payload: transform(json) }), phoneNumber }
  }
  const stored = async (): Promise<string[]> => (await phoneNumbersOf(fixture.userId) as Array<{ phoneNumber: string }>).map((entry) => entry.phoneNumber)

  for (const contentType of ['application/json', 'application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/JSON', 'APPLICATION/JSON; CHARSET=UTF-8', 'Application/Json']) {
    const { response, phoneNumber } = await attempt({ 'content-type': contentType })
    t.equal(response.statusCode, 200, `${contentType}: 200`)
    t.ok((await stored()).includes(phoneNumber), `${contentType}: stored`)
  }

  const boundary = '----keep'
  const refused: Array<[string, Record<string, string>, ((json: string) => string | Buffer) | undefined]> = [
    ['text/json', { 'content-type': 'text/json' }, undefined],
    ['text/plain', { 'content-type': 'text/plain' }, undefined],
    ['application/x-www-form-urlencoded', { 'content-type': 'application/x-www-form-urlencoded' }, undefined],
    ['multipart/form-data with a JSON part', { 'content-type': `multipart/form-data; boundary=${boundary}` }, (json) => `--${boundary}\r\nContent-Disposition: form-data; name="body"\r\nContent-Type: application/json\r\n\r\n${json}\r\n--${boundary}--\r\n`],
    ['application/jsonx (a prefix of JSON is not JSON)', { 'content-type': 'application/jsonx' }, undefined],
    ['application/json-seq', { 'content-type': 'application/json-seq' }, undefined],
    ['an empty content type', { 'content-type': '' }, undefined],
    ['no content type at all', {}, (json) => Buffer.from(json)],
    ['application/json; charset=latin1', { 'content-type': 'application/json; charset=latin1' }, undefined]
  ]
  for (const [name, headers, transform] of refused) {
    const { response, phoneNumber } = await attempt(headers, transform)
    assertContractError(t, name, response, [415])
    t.notOk((await stored()).includes(phoneNumber), `${name}: not stored`)
  }
})

t.test('ReDoS-sized values in every field and parameter: 400 naming the field, nothing written', async (t) => {
  // Only status and body are asserted: how long an answer takes is not this test's business.
  for (const [limit, size] of [[undefined, 15_000], [1_048_576, 1_000_000]] as const) {
    const { app, db, fixture, headers } = await build(t, limit === undefined ? {} : { bodyLimit: limit })
    const before = await snapshot(db)
    const url = phoneNumbersUrl(fixture.organizationId)
    const valid = { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' }
    const bodies: Array<[string, Record<string, unknown>, RegExp]> = [
      ['digits', { phoneNumber: `+1${'2'.repeat(size)}` }, /body\/phoneNumber must match pattern/],
      ['digits then a letter', { phoneNumber: `+${'1'.repeat(size)}x` }, /body\/phoneNumber must match pattern/],
      ['plus signs', { phoneNumber: '+1'.repeat(size / 2) }, /body\/phoneNumber must match pattern/],
      ['spaces after a valid number', { phoneNumber: `+14165550102${' '.repeat(size)}` }, /body\/phoneNumber must match pattern/],
      ['a long label', { label: 'a'.repeat(size) }, /body\/label must NOT have more than 64 characters/],
      ['a long label of zero-width spaces', { label: '\u200B'.repeat(size / 3) }, /body\/label must NOT have more than 64 characters/],
      ['a long label of surrogate pairs ending in a lone one', { label: `${'\uD83D\uDCDE'.repeat(size / 4)}\uD800` }, /body\/label must NOT have more than 64 characters/],
      ['a long target user id', { targetUserId: 'a'.repeat(size) }, /body\/targetUserId must match pattern/],
      ['a long hex target user id', { targetUserId: '0'.repeat(size) }, /body\/targetUserId must match pattern/],
      ['a long provider', { provider: 'twilio'.repeat(size / 6) }, /body\/provider must be one of: twilio, sinch, textgrid/]
    ]
    for (const [name, extra, details] of bodies) {
      for (const method of ['POST', 'DELETE'] as const) {
        // DELETE's body has no label: a long label there is an ignored extra field next to a key held by no one.
        if (method === 'DELETE' && 'label' in extra) continue
        const response = await app.inject({ method, url, headers, payload: JSON.stringify({ ...valid, ...extra }) })
        assertContractError(t, `${method} ${name} (${size})`, response, [400])
        t.match(response.json().details, details, `${method} ${name}: names the field`)
      }
    }
    const queries: Array<[string, RegExp]> = [
      [`targetUserId=${'a'.repeat(size)}`, /querystring\/targetUserId must match pattern/],
      [`targetUserId=${fixture.userId}${'%20'.repeat(size / 3)}`, /querystring\/targetUserId must match pattern/],
      [`provider=${'t'.repeat(size)}`, /querystring\/provider must be one of: twilio, sinch, textgrid/]
    ]
    for (const [query, details] of queries) {
      const response = await app.inject({ method: 'GET', url: `${url}?${query}`, headers })
      assertContractError(t, `GET ${query.slice(0, 24)}... (${query.length} characters)`, response, [400])
      t.match(response.json().details, details, `GET ${query.slice(0, 24)}...: names the parameter`)
    }
    t.same(await snapshot(db), before, `nothing written (${size})`)
  }
})

t.test('no stack trace reaches a client: an unexpected failure inside the plugin is a bare 500', async (t) => {
  const secret = 'mongodb://admin:hunter2@10.0.0.5:27017'
  const { app, db, fixture, headers } = await build(t, { isSuperAdmin: () => { throw new TypeError(`cannot read the role (${secret})`) } })
  const before = await snapshot(db)
  for (const [method, response] of await injectEveryOperation(app, phoneNumbersUrl(fixture.organizationId), headers, { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' })) {
    assertContractError(t, `${method} with a throwing predicate`, response, [500])
    t.match(response.json().details, /^The request could not be completed \(request id [^)]+\)$/, `${method}: only the request id`)
    t.notMatch(response.body, /hunter2|10\.0\.0\.5|TypeError|cannot read/, `${method}: nothing of the error`)
  }
  t.same(await snapshot(db), before, 'nothing written')
})

t.test('~4,500 fuzzed tokens (seeded): every answer 401 or 403 with { error, details }, never 2xx or 5xx, nothing written', async (t) => {
  const { app, db, fixture } = await build(t)
  const before = await snapshot(db)
  const url = phoneNumbersUrl(fixture.organizationId)
  const random = prng(0x5EC0_2024)
  const int = (below: number): number => Math.floor(random() * below)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T
  const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const randomText = (length: number, alphabet: string): string => Array.from({ length }, () => alphabet[int(alphabet.length)]).join('')
  const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('')

  // Fixed claims (no fixture ids, no clock): the same tokens on every run. sub is not checked by default.
  const SUB = '5f7b1c2e8a1d4e0012c3b4a1'
  const EXP = 4102444800 // 2100-01-01
  const HEADER = JSON.stringify({ alg: 'HS256', typ: 'JWT' })
  const superAdminPayload = JSON.stringify({ sub: SUB, role: 'SUPERADMIN', iat: 1700000000, exp: EXP })
  const agentPayload = JSON.stringify({ sub: SUB, role: 'AGENT', iat: 1700000000, exp: EXP })
  const issued = [signText(HEADER, superAdminPayload), signText(HEADER, agentPayload), signText(JSON.stringify({ typ: 'JWT', alg: 'HS256', kid: 'k1' }), superAdminPayload)]
  const issuedSet = new Set(issued)
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${issued[0]}` } })).statusCode, 200, 'control: the unmutated SUPERADMIN token is valid')

  const segments = (token: string): string[] => token.split('.')
  const junk: unknown[] = [null, true, false, 0, -1, 1e300, '', 'x', [], {}, [null], { $ne: null }, 'NaN', '1e400', 'x'.repeat(300), 'SUPERADMIN', ['SUPERADMIN']]
  const algs: unknown[] = ['none', 'None', 'NONE', 'nOnE', '', 'HS384', 'HS512', 'hs256', 'HS256 ', ' HS256', 'HS256\u0000', 'RS256', 'ES256', 'PS256', 'EdDSA', null, 1, ['HS256'], { alg: 'HS256' }]
  const crits: unknown[] = [[], ['b64'], ['exp'], ['alg'], ['x-custom'], 'b64', [1], ['x-custom', 'x-custom'], null, {}]
  const nearMissRoles: unknown[] = ['superadmin', 'SUPERADMIN ', ' SUPERADMIN', 'SUPERADMIN\u0000', '\u0405UPERADMIN', 'SUPER\u200BADMIN', ['SUPERADMIN'], { role: 'SUPERADMIN' }, null, true, 1, '', 'ADMIN', 'SUPERADMINS', 'SUPERADMI', 'AGENT']
  // exp values that are never a valid future expiry (1e300 would be one).
  const brokenExps: unknown[] = [null, true, false, 0, -1, 1, 1700000000, '', 'x', String(EXP), [], [EXP], {}, { $gt: 0 }, 'NaN', '1e400']
  const headerFields: Array<[string, unknown[]]> = [['alg', algs], ['crit', crits], ['typ', junk], ['kid', junk], ['jku', junk], ['jwk', junk], ['b64', junk], ['x5u', junk], ['x5c', junk], ['cty', junk], ['zip', junk]]
  const otherClaims: Array<[string, unknown[]]> = [['sub', junk], ['iat', junk], ['roles', junk], ['Role', junk], ['realm_access', junk], ['scope', junk], ['aud', junk], ['iss', junk], ['jti', junk], ['admin', junk]]

  /** 1 to 3 random changes drawn from `fields`. */
  function changed (base: Record<string, unknown>, fields: Array<[string, unknown[]]>): Record<string, unknown> {
    const result = { ...base }
    for (let i = 0, n = 1 + int(3); i < n; i++) {
      const [key, values] = pick(fields)
      result[key] = pick(values)
    }
    return result
  }
  const baseHeader = { alg: 'HS256', typ: 'JWT' }
  const superAdminClaims = JSON.parse(superAdminPayload) as Record<string, unknown>

  /** [kind, how many, one mutation]: each yields a string that must not be accepted as a SUPERADMIN token. */
  const mutators: Array<[string, number, () => string]> = [
    ['character bit flip', 1100, () => {
      const token = pick(issued)
      const at = int(token.length)
      const code = token.charCodeAt(at) ^ (1 << int(7))
      return code < 32 || code > 126 ? token.slice(0, at) + 'A' + token.slice(at + 1) : token.slice(0, at) + String.fromCharCode(code) + token.slice(at + 1)
    }],
    ['decoded-byte bit flip', 700, () => {
      const parts = segments(pick(issued))
      const which = int(3)
      const bytes = Buffer.from(parts[which] ?? '', 'base64url')
      if (bytes.length > 0) {
        const at = int(bytes.length)
        bytes[at] = (bytes[at] ?? 0) ^ (1 << int(8))
      }
      parts[which] = bytes.toString('base64url')
      return parts.join('.')
    }],
    ['truncation', 350, () => { const token = pick(issued); return token.slice(0, int(token.length)) }],
    ['truncation of one segment', 250, () => {
      const parts = segments(pick(issued))
      const which = int(3)
      parts[which] = (parts[which] ?? '').slice(0, int((parts[which] ?? '').length))
      return parts.join('.')
    }],
    ['segment swap, drop or repeat', 100, () => {
      const [h = '', p = '', s = ''] = segments(pick(issued))
      return pick([[p, h, s], [h, s, p], [s, p, h], [p, s, h], [s, h, p], [h, p], [p, s], [h, s], [h, p, s, s], [h, h, p, s], [h, p, p, s], [h, p, s, ''], ['', h, p, s], [h, '', p, s], [h, p, '', s]]).join(pick(['.', '..', ',']))
    }],
    ['segments of different tokens', 9, () => {
      const [a, b, c] = [segments(pick(issued)), segments(pick(issued)), segments(pick(issued))]
      return [a[0], b[1], c[2]].join('.')
    }],
    ['base64 garbage', 691, () => {
      const kind = int(5)
      if (kind === 0) return Array.from({ length: 3 }, () => randomText(int(120), BASE64URL)).join('.')
      if (kind === 1) return Array.from({ length: 1 + int(6) }, () => Buffer.from(Array.from({ length: int(64) }, () => int(256))).toString('base64url')).join('.')
      if (kind === 2) return Array.from({ length: 3 }, () => Buffer.from(Array.from({ length: 1 + int(48) }, () => int(256))).toString('base64')).join('.')
      if (kind === 3) return randomText(1 + int(400), printable).trim()
      const [h = '', p = ''] = segments(pick(issued))
      return `${h}.${p}.${randomText(int(90), BASE64URL)}`
    }],
    ['header JSON mutation, original signature', 300, () => {
      const [, p = '', s = ''] = segments(issued[0] ?? '')
      return `${b64(changed(baseHeader, headerFields))}.${p}.${s}`
    }],
    ['header JSON mutation, re-signed over an AGENT payload', 250, () => {
      if (int(10) === 0) return signText(pick(['[]', '"HS256"', 'null', '1', '{"alg":"none","alg":"HS256"}', '{"alg":"HS256","alg":"none"}', '{"alg":"HS256"', 'alg=HS256', '\uFEFF{"alg":"HS256"}']), agentPayload)
      return signText(JSON.stringify(changed(baseHeader, headerFields)), agentPayload)
    }],
    ['payload JSON mutation, original signature', 200, () => {
      const [h = '', , s = ''] = segments(issued[0] ?? '')
      return `${h}.${b64(changed(superAdminClaims, [['role', nearMissRoles], ['exp', [...brokenExps, 1e300]], ['nbf', junk], ...otherClaims]))}.${s}`
    }],
    ['payload JSON mutation, re-signed (never a valid SUPERADMIN claim set)', 400, () => {
      const mode = int(8)
      // A wrong role; a broken exp; or a future or malformed nbf: each refused whatever else changed.
      if (mode < 3) return signText(HEADER, JSON.stringify({ ...changed(superAdminClaims, otherClaims), role: pick(nearMissRoles) }))
      if (mode < 5) return signText(HEADER, JSON.stringify({ ...changed(superAdminClaims, otherClaims), exp: pick(brokenExps) }))
      if (mode < 7) return signText(HEADER, JSON.stringify({ ...changed(superAdminClaims, otherClaims), nbf: pick([EXP - 1, 'x', null, [], {}, [0], '0']) }))
      return signText(HEADER, pick([
        '[]', 'null', '"SUPERADMIN"', '1', '{', `{"role":"SUPERADMIN","role":"AGENT","exp":${EXP}}`, `{"__proto__":{"role":"SUPERADMIN"},"exp":${EXP}}`,
        `{"constructor":{"prototype":{"role":"SUPERADMIN"}},"exp":${EXP}}`, `{"role":"SUPERADMIN","exp":"${EXP}"}`, '{"role":"SUPERADMIN"}',
        `\uFEFF{"role":"SUPERADMIN","exp":${EXP}}`, `{"role":"SUPERADMIN","exp":${EXP}`, `{"role":${'['.repeat(2000)}${']'.repeat(2000)},"exp":${EXP}}`
      ]))
    }],
    ['SUPERADMIN payload signed with another key', 150, () => signText(HEADER, superAdminPayload, pick(['', ' ', TEST_SECRET.toUpperCase(), `${TEST_SECRET}\n`, TEST_SECRET.slice(1), TEST_SECRET.slice(0, -1), randomText(32 + int(32), printable)]))]
  ]

  const failures: string[] = []
  const statuses = new Map<number, number>()
  const seen = new Set<string>()
  for (const [kind, count, mutate] of mutators) {
    let made = 0
    for (let tries = 0; made < count && tries < count * 20; tries++) {
      const token = mutate()
      if (issuedSet.has(token) || seen.has(token)) continue
      seen.add(token)
      made++
      const response = await app.inject({
        method: 'POST',
        url,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' }
      })
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
      const problem = contractProblem(response.statusCode, response.body, [401, 403])
      if (problem !== undefined) failures.push(`${kind}: Bearer ${token.slice(0, 400)} -> ${problem}: ${response.body.slice(0, 200)}`)
    }
    t.equal(made, count, `${kind}: ${count} distinct tokens`)
  }
  t.ok(seen.size >= 4500, `${seen.size} distinct fuzzed tokens sent`)
  t.comment(`answers: ${[...statuses].sort().map(([status, n]) => `${status} x${n}`).join(', ')}`)
  t.same(failures.slice(0, 20), [], `every answer 401/403 with { error, details } (${failures.length} did not)`)
  t.same(await snapshot(db), before, 'nothing written')

  t.test('the signature is checked as sent: other spellings of its last base64url character (unused low bits) are refused', async (t) => {
    const token = issued[0] ?? ''
    const last = BASE64URL.indexOf(token.at(-1) ?? '')
    // HS256: 32 bytes in 43 characters; the last character carries 4 signature bits and 2 unused ones.
    const respellings = [1, 2, 3].map((bits) => token.slice(0, -1) + BASE64URL[last ^ bits])
    for (const respelled of respellings) {
      t.same(Buffer.from(respelled.split('.')[2] ?? '', 'base64url'), Buffer.from(token.split('.')[2] ?? '', 'base64url'), `${respelled.slice(-3)} decodes to the same signature bytes`)
      const response = await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${respelled}`, 'content-type': 'application/json' }, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' } })
      assertContractError(t, `signature ending ...${respelled.slice(-3)} instead of ...${token.slice(-3)}`, response, [401])
    }
    await eventsSettled(db)
    await db.collection('users').updateOne({ _id: new ObjectId(fixture.userId) }, { $unset: { phoneNumbers: '', phoneNumbersRevision: '', phoneNumbersOutbox: '' } })
  })
})

t.test('parallel assigns of distinct numbers to one user: 200 or 409 each, the stored array is exactly the 200s', async (t) => {
  // The writes to one user are queued in-process (src/domain/per-key-queue.ts), so these 400 run one
  // after another, each rewriting the growing array: about 3 s on mongo-java-server, 13 s on
  // FerretDB 1.24 (measured). On FerretDB the queue is what keeps them correct.
  const WRITES = 400
  const { app, db, fixture, headers, phoneNumbersOf, userDocument } = await build(t, { maxNumbersPerUser: WRITES + 100 })
  const others = (await snapshot(db)).users.filter((user) => String((user as { _id: ObjectId })._id) !== fixture.userId)
  const providers = ['twilio', 'sinch', 'textgrid'] as const
  const requests = Array.from({ length: WRITES }, (_, i) => ({
    targetUserId: fixture.userId,
    provider: providers[i % providers.length] ?? 'twilio',
    phoneNumber: `+1437555${String(i).padStart(4, '0')}`,
    ...(i % 5 === 0 ? { isDefault: false } : {}),
    ...(i % 7 === 0 ? { label: `line ${i}` } : {})
  }))
  const responses = await Promise.all(requests.map((payload) => app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.organizationId), headers, payload })))

  const succeeded: string[] = []
  const unexpected: string[] = []
  responses.forEach((response, i) => {
    const request = requests[i]
    if (request === undefined) return
    if (response.statusCode === 200) {
      succeeded.push(`${request.provider}:${request.phoneNumber}`)
      if (response.json().assignment?.phoneNumber !== request.phoneNumber) unexpected.push(`${request.phoneNumber}: answered for ${response.body.slice(0, 120)}`)
    } else if (response.statusCode === 409) {
      const problem = contractProblem(response.statusCode, response.body, [409])
      if (problem !== undefined) unexpected.push(`${request.phoneNumber}: 409 ${problem}`)
    } else {
      unexpected.push(`${request.phoneNumber}: ${response.statusCode} ${response.body.slice(0, 160)}`)
    }
  })
  t.same(unexpected, [], 'every answer is 200 for its own number, or a contract 409')
  t.ok(succeeded.length > 0, `${succeeded.length} of ${WRITES} assigned, ${WRITES - succeeded.length} conflicts`)

  const stored = await phoneNumbersOf(fixture.userId) as Array<{ provider: string, phoneNumber: string, isDefault: boolean }>
  const storedKeys = stored.map((entry) => `${entry.provider}:${entry.phoneNumber}`)
  t.equal(stored.length, succeeded.length, 'one stored entry per 200')
  t.equal(new Set(storedKeys).size, storedKeys.length, 'no duplicates')
  t.same([...storedKeys].sort(), [...succeeded].sort(), 'exactly the numbers answered 200, none of the 409s')
  t.equal((await userDocument(fixture.userId))?.['phoneNumbersRevision'], succeeded.length, 'one revision per successful write: no write lost or repeated')
  for (const provider of providers) {
    const defaults = stored.filter((entry) => entry.provider === provider && entry.isDefault).length
    t.ok(defaults <= 1, `${provider}: at most one default (${defaults})`)
  }
  const listed = await app.inject({ method: 'GET', url: `${phoneNumbersUrl(fixture.organizationId)}?targetUserId=${fixture.userId}&limit=1000`, headers })
  t.same((listed.json().phoneNumbers as Array<{ provider: string, phoneNumber: string }>).map((entry) => `${entry.provider}:${entry.phoneNumber}`).sort(), [...succeeded].sort(), 'the list shows the same numbers')
  t.same((await snapshot(db)).users.filter((user) => String((user as { _id: ObjectId })._id) !== fixture.userId), others, 'no other user changed')
})

/** What a raw socket received, and whether the server closed it before `waitMs`. */
interface RawAnswer {
  received: string
  /** Every HTTP status line's code, in order. */
  statuses: number[]
  closedByServer: boolean
  /** The body of the first response (up to its Content-Length). */
  body: string
}

async function rawRequest (port: number, data: string | Buffer, waitMs = 5000): Promise<RawAnswer> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let received = ''
  let closedByServer = false
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => {
    socket.once('end', () => { closedByServer = true; resolve() })
    socket.once('close', () => { closedByServer = true; resolve() })
  })
  socket.write(data)
  let timer: NodeJS.Timeout | undefined
  await Promise.race([closed, new Promise((resolve) => { timer = setTimeout(resolve, waitMs) })])
  clearTimeout(timer)
  socket.destroy()
  const statuses = [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]))
  const headEnd = received.indexOf('\r\n\r\n')
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(received.slice(0, headEnd))?.[1] ?? -1)
  const rest = headEnd === -1 ? '' : received.slice(headEnd + 4)
  return { received, statuses, closedByServer, body: length >= 0 ? rest.slice(0, length) : rest }
}

async function stop (server: StandaloneServer): Promise<void> {
  if (server.child.exitCode !== null) return
  const gone = once(server.child, 'close')
  server.child.kill('SIGTERM')
  await gone
}

t.test('the real server process, over raw sockets', async (t) => {
  const secret = 'keep-test-Zq8vR3mW1xT6yL0pK4nB7cF2hJ9dG5sA'
  const { db, dbName } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const server = await startStandalone({ MONGODB_URI: uriForDatabase(dbName), JWT_SECRET: secret, LOG_LEVEL: 'silent' })
  t.teardown(() => stop(server))
  const signer = await createSigner(secret)
  t.teardown(() => signer.close())
  const authorization = `Bearer ${signer.sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}`
  const org = fixture.organizationId
  const other = fixture.otherOrganizationId
  const users = db.collection('users')
  const numbersOf = async (userId: string): Promise<string[]> => (((await users.findOne({ _id: new ObjectId(userId) }))?.['phoneNumbers'] ?? []) as Array<{ phoneNumber: string }>).map((entry) => entry.phoneNumber)
  const assignBody = (phoneNumber: string): string => JSON.stringify({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber })
  const head = (method: string, path: string, lines: string[]): string => `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines.map((line) => `${line}\r\n`).join('')}\r\n`

  // A number the user holds, so a DELETE that got through would show.
  const seeded = await rawRequest(server.port, head('POST', phoneNumbersUrl(org), [`Authorization: ${authorization}`, 'Content-Type: application/json', `Content-Length: ${assignBody('+14165550100').length}`, 'Connection: close']) + assignBody('+14165550100'))
  t.equal(seeded.statuses[0], 200, 'control: an ordinary assign over a raw socket is 200')

  t.test('traversal and encoded separators in the path: 400 or 404, never another organization, nothing written', async (t) => {
    const before = await snapshot(db)
    const paths = [
      '/api/organizations/..%2F..%2Fx/phone-numbers',
      `/api/organizations/..%2F${org}/phone-numbers`,
      `/api/organizations/${other}%2F..%2F${org}/phone-numbers`,
      `/api/organizations/${org}%2F..%2F${other}/phone-numbers`,
      `/api/organizations/${org}%2F/phone-numbers`,
      `/api/organizations/%2F${org}/phone-numbers`,
      `/api/organizations/${org}%2Fphone-numbers`,
      `/api%2Forganizations%2F${org}%2Fphone-numbers`,
      `/api/organizations/${other}%5C..%5C${org}/phone-numbers`,
      `/api/organizations/..%5C${org}/phone-numbers`,
      `/api/organizations/${other}\\..\\${org}/phone-numbers`,
      `/api/organizations/..;/${org}/phone-numbers`,
      `/api/organizations/${other}/..;/${org}/phone-numbers`,
      `/api/organizations/${org};/phone-numbers`,
      `/api/organizations/${org}/..;/phone-numbers`,
      `/api/organizations/%252e%252e%252f${org}/phone-numbers`,
      `/api/organizations/${other}%252F..%252F${org}/phone-numbers`,
      `/api/organizations/${org}%255C/phone-numbers`,
      `/api/organizations/%25%32%65%25%32%65%25%32%66${org}/phone-numbers`,
      `/api/organizations/${other}/../${org}/phone-numbers`,
      `/api/organizations/./${org}/phone-numbers`,
      `/api/organizations/%2e%2e/${org}/phone-numbers`,
      `/api/organizations/${other}/%2e%2e/${org}/phone-numbers`,
      `/api/organizations/${org}%00/phone-numbers`,
      `/api/organizations/${org}/phone-numbers/..%2F..%2F${other}/phone-numbers`
    ]
    let tried = 0
    for (const path of paths) {
      for (const method of ['GET', 'POST', 'DELETE'] as const) {
        const body = method === 'GET' ? '' : assignBody(method === 'POST' ? `+1416555${String(2000 + tried)}` : '+14165550100')
        const answer = await rawRequest(server.port, head(method, path, [`Authorization: ${authorization}`, 'Content-Type: application/json', `Content-Length: ${body.length}`, 'Connection: close']) + body)
        const status = answer.statuses[0] ?? 0
        t.ok(status === 400 || status === 404, `${method} ${path}: ${status}`)
        t.notMatch(answer.body, /phoneNumbers|success|\+1416555/, `${method} ${path}: no assignment in the answer`)
        t.notMatch(answer.received, STACK_TRACE, `${method} ${path}: no stack trace`)
        if (status === 400) t.equal(contractProblem(status, answer.body, [400]), undefined, `${method} ${path}: { error, details }`)
        tried++
      }
    }
    t.same(await snapshot(db), before, `nothing written after ${tried} requests`)
    const control = await rawRequest(server.port, head('GET', phoneNumbersUrl(org), [`Authorization: ${authorization}`, 'Connection: close']))
    t.equal(control.statuses[0], 200, 'control: the plain path answers 200 on the same server')
  })

  t.test('compressed bodies are not decoded: 400 or 415, never stored', async (t) => {
    const cases: Array<[string, string, (body: string) => Buffer]> = [
      ['gzip', 'gzip', (body) => gzipSync(body)],
      ['GZIP spelt in capitals', 'GZIP', (body) => gzipSync(body)],
      ['x-gzip', 'x-gzip', (body) => gzipSync(body)],
      ['deflate', 'deflate', (body) => deflateSync(body)],
      ['br', 'br', (body) => brotliCompressSync(body)],
      ['gzip twice', 'gzip, gzip', (body) => gzipSync(gzipSync(body))]
    ]
    let n = 0
    for (const [name, encoding, compress] of cases) {
      const phoneNumber = `+1416555${String(3000 + n++)}`
      const payload = compress(assignBody(phoneNumber))
      const answer = await rawRequest(server.port, Buffer.concat([Buffer.from(head('POST', phoneNumbersUrl(org), [`Authorization: ${authorization}`, 'Content-Type: application/json', `Content-Encoding: ${encoding}`, `Content-Length: ${payload.length}`, 'Connection: close'])), payload]))
      t.equal(contractProblem(answer.statuses[0] ?? 0, answer.body, [400, 415]), undefined, `${name}: ${answer.statuses[0]} ${answer.body}`)
      t.notOk((await numbersOf(fixture.userId)).includes(phoneNumber), `${name}: not stored`)
    }
  })

  t.test('a chunked body over the body limit is 413 and closes the connection; one under it is accepted', async (t) => {
    const chunked = (body: string): string => `${(body.match(/[\s\S]{1,1000}/g) ?? []).map((chunk) => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('')}0\r\n\r\n`
    const withNote = (phoneNumber: string, note: number): string => JSON.stringify({ targetUserId: fixture.userId, provider: 'sinch', phoneNumber, note: 'x'.repeat(note) })
    const lines = [`Authorization: ${authorization}`, 'Content-Type: application/json', 'Transfer-Encoding: chunked']

    const under = await rawRequest(server.port, head('POST', phoneNumbersUrl(org), [...lines, 'Connection: close']) + chunked(withNote('+14165554001', 8000)))
    t.equal(under.statuses[0], 200, 'control: 8 kB in 1 kB chunks is accepted')
    t.ok((await numbersOf(fixture.userId)).includes('+14165554001'), 'control: stored')

    for (const [name, size] of [['20 kB', 20_000], ['200 kB', 200_000]] as const) {
      const answer = await rawRequest(server.port, head('POST', phoneNumbersUrl(org), lines) + chunked(withNote('+14165554002', size)))
      t.equal(contractProblem(answer.statuses[0] ?? 0, answer.body, [413]), undefined, `${name}: ${answer.statuses[0]} ${answer.body}`)
      t.same(answer.statuses, [413], `${name}: one answer`)
      t.ok(answer.closedByServer, `${name}: the server closed the connection`)
    }
    t.notOk((await numbersOf(fixture.userId)).includes('+14165554002'), 'nothing over the limit stored')
  })

  t.test('Content-Length with Transfer-Encoding (request smuggling): 400 from the HTTP parser, connection closed, nothing smuggled through', async (t) => {
    let n = 0
    const smuggled = (): { phoneNumber: string, text: string } => {
      const phoneNumber = `+1416555${String(5000 + n++)}`
      const body = assignBody(phoneNumber)
      return { phoneNumber, text: head('POST', phoneNumbersUrl(org), [`Authorization: ${authorization}`, 'Content-Type: application/json', `Content-Length: ${body.length}`]) + body }
    }
    const control = smuggled()
    const alone = await rawRequest(server.port, control.text.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'))
    t.equal(alone.statuses[0], 200, 'control: the inner request alone is a valid assign')
    t.ok((await numbersOf(fixture.userId)).includes(control.phoneNumber), 'control: and is stored')

    const base = [`Authorization: ${authorization}`, 'Content-Type: application/json']
    // [name, the outer request's framing headers, its body around the inner request]
    const cases: Array<[string, (inner: string) => [string[], string]]> = [
      ['CL.TE: Content-Length covers the inner request, chunked ends before it', (inner) => [[`Content-Length: ${5 + inner.length}`, 'Transfer-Encoding: chunked'], `0\r\n\r\n${inner}`]],
      ['TE.CL: the inner request inside a chunk, Content-Length stops before it', (inner) => [['Transfer-Encoding: chunked', 'Content-Length: 4'], `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`]],
      ['Content-Length first, then TRANSFER-ENCODING: CHUNKED', (inner) => [[`Content-Length: ${5 + inner.length}`, 'TRANSFER-ENCODING: CHUNKED'], `0\r\n\r\n${inner}`]],
      ['Transfer-Encoding: xchunked with Content-Length', (inner) => [['Transfer-Encoding: xchunked', 'Content-Length: 5'], `0\r\n\r\n${inner}`]],
      ['space before the colon of Transfer-Encoding', (inner) => [['Transfer-Encoding : chunked', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['Transfer-Encoding folded onto a second line', (inner) => [['Transfer-Encoding:', ' chunked', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['Transfer-Encoding with a tab and Content-Length', (inner) => [['Transfer-Encoding:\tchunked', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['two Transfer-Encoding headers and Content-Length', (inner) => [['Transfer-Encoding: chunked', 'Transfer-Encoding: identity', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['chunked not last (chunked, identity)', (inner) => [['Transfer-Encoding: chunked, identity'], `0\r\n\r\n${inner}`]],
      ['two different Content-Length headers', (inner) => [['Content-Length: 5', `Content-Length: ${5 + inner.length}`], `0\r\n\r\n${inner}`]],
      ['bare LF ending the last chunk', (inner) => [['Transfer-Encoding: chunked'], `0\n\n${inner}`]]
    ]
    const smuggledNumbers: string[] = []
    for (const [name, frame] of cases) {
      const inner = smuggled()
      smuggledNumbers.push(inner.phoneNumber)
      const [framing, body] = frame(inner.text)
      const answer = await rawRequest(server.port, head('POST', phoneNumbersUrl(org), [...base, ...framing]) + body)
      t.same(answer.statuses, [400], `${name}: one answer, 400`)
      t.ok(answer.closedByServer, `${name}: connection closed by the server`)
      t.notMatch(answer.received, STACK_TRACE, `${name}: no stack trace`)
    }
    // Give a request that did slip through time to land before looking.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const held = await numbersOf(fixture.userId)
    t.same(smuggledNumbers.filter((phoneNumber) => held.includes(phoneNumber)), [], 'no smuggled request was executed')
  })
})

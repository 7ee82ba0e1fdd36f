/**
 * What the security review found held and must keep holding, for the items
 * the rest of the suite did not (or only partly) test, requests side:
 * bracketed and repeated query parameters, auth before any body or
 * content-type check, content-type variants, ReDoS-sized inputs, no stack
 * trace in any answer, and 400 parallel writes to one user. Every hostile
 * request that could write is followed by a look at the stored data.
 * Tokens: keep-tokens.test.ts; the real server over raw sockets:
 * test/server/keep-standalone.test.ts.
 */
import type { LightMyRequestResponse } from 'fastify'
import { gzipSync } from 'node:zlib'
import type { ObjectId } from 'mongodb'
import t from 'tap'
import { build, injectEveryOperation, phoneNumbersUrl } from '../helper.js'
import { assertContractError, contractProblem, nowSeconds, signText, snapshot } from './keep-helper.js'

// A few thousand in-process requests, 400 serialized writes.
t.setTimeout(120_000)

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

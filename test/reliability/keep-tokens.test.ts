/**
 * What the security review found held and must keep holding, tokens side:
 * claim types and spellings (exp, role, iss) and ~4,500 deterministically
 * fuzzed tokens. Every refused token is followed by a look at the stored data.
 * Requests: keep-requests.test.ts.
 */
import type { LightMyRequestResponse } from 'fastify'
import { ObjectId } from 'mongodb'
import t from 'tap'
import { build, injectEveryOperation, phoneNumbersUrl, eventsSettled, TEST_SECRET } from '../helper.js'
import { assertContractError, b64, contractProblem, nowSeconds, prng, signText, snapshot } from './keep-helper.js'

// A few thousand in-process requests.
t.setTimeout(120_000)

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

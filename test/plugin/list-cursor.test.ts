/**
 * Pure unit tests of the listing's cursor codec (plugins/phone-numbers/list-cursor.ts):
 * round trips, scope binding, refusal of altered cursors, and the key it signs with.
 */
import t from 'tap'
import { createHmac } from 'node:crypto'
import { ObjectId } from 'mongodb'
import { createListCursorCodec, cursorKey, type CursorScope } from '../../plugins/phone-numbers/list-cursor.js'

t.test('cursor codec: round trip, scope binding, and refusal of altered cursors', async (t) => {
  const key = cursorKey(undefined, 'a-token-secret-that-is-at-least-32-characters')
  const codec = createListCursorCodec(key)
  const organizationId = new ObjectId().toHexString()
  const scope: CursorScope = { organizationId, filters: { targetUserId: undefined, provider: 'twilio', phoneNumberPrefix: undefined, label: 'Main', isInboundEnabled: 'true', isDefault: undefined } }
  const userId = new ObjectId()
  const full = { userId, phoneNumber: '+14165550101', provider: 'sinch' as const }

  const cursor = codec.encode(scope, full)
  t.match(cursor, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'two base64url parts joined by a dot')
  t.ok(cursor.length <= 512, 'within the contract\'s maxLength')
  t.same(codec.decode(scope, cursor), full, 'round trip of a position inside a user')
  t.same(codec.decode(scope, codec.encode(scope, { userId })), { userId }, 'round trip of a position after a whole user')
  t.same(codec.decode({ organizationId: organizationId.toUpperCase(), filters: { ...scope.filters, label: 'mAIN' } }, cursor), full, 'organization id and label compared ignoring case, as documented')
  t.same(codec.decode({ organizationId, filters: { isDefault: undefined, isInboundEnabled: 'true', label: 'Main', phoneNumberPrefix: undefined, provider: 'twilio', targetUserId: undefined } }, cursor), full, 'the order of the filter names does not matter')

  // Other scopes.
  t.equal(codec.decode({ ...scope, organizationId: new ObjectId().toHexString() }, cursor), undefined, 'another organization')
  t.equal(codec.decode({ organizationId, filters: { ...scope.filters, provider: 'sinch' } }, cursor), undefined, 'another provider')
  t.equal(codec.decode({ organizationId, filters: { ...scope.filters, provider: undefined } }, cursor), undefined, 'a filter dropped')
  t.equal(codec.decode({ organizationId, filters: { ...scope.filters, isDefault: 'false' } }, cursor), undefined, 'a filter added')
  t.equal(codec.decode({ organizationId, filters: { ...scope.filters, label: 'Mai' } }, cursor), undefined, 'another label')
  t.equal(codec.decode({ organizationId, filters: { ...scope.filters, isInboundEnabled: 'false' } }, cursor), undefined, 'another flag value')
  t.equal(codec.decode({ organizationId, filters: { ...scope.filters, targetUserId: userId.toHexString() } }, cursor), undefined, 'a user filter added')
  t.equal(createListCursorCodec(cursorKey(undefined, 'another-token-secret-that-is-32-characters-long')).decode(scope, cursor), undefined, 'another key')

  // Every bit of the decoded payload and signature flipped, re-encoded.
  const [payload, signature] = cursor.split('.') as [string, string]
  const payloadBytes = Buffer.from(payload, 'base64url')
  const macBytes = Buffer.from(signature, 'base64url')
  t.equal(macBytes.length, 16, 'a 16-byte MAC')
  let accepted = 0
  for (let i = 0; i < payloadBytes.length * 8; i++) {
    const flipped = Buffer.from(payloadBytes)
    flipped[i >> 3]! ^= 1 << (i & 7)
    if (codec.decode(scope, `${flipped.toString('base64url')}.${signature}`) !== undefined) accepted++
  }
  for (let i = 0; i < macBytes.length * 8; i++) {
    const flipped = Buffer.from(macBytes)
    flipped[i >> 3]! ^= 1 << (i & 7)
    if (codec.decode(scope, `${payload}.${flipped.toString('base64url')}`) !== undefined) accepted++
  }
  t.equal(accepted, 0, `none of the ${(payloadBytes.length + macBytes.length) * 8} single-bit flips of payload or MAC is accepted`)

  // Every single-character change of the cursor text: "an altered cursor answers 400".
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const acceptedChanges: string[] = []
  for (let i = 0; i < cursor.length; i++) {
    if (cursor[i] === '.') continue
    for (const bit of [1, 2, 4, 8, 16, 32]) {
      const replacement = B64[B64.indexOf(cursor[i]!) ^ bit]!
      const altered = cursor.slice(0, i) + replacement + cursor.slice(i + 1)
      if (codec.decode(scope, altered) !== undefined) acceptedChanges.push(`position ${i} (${i > payload.length ? `signature character ${i - payload.length} of ${signature.length}` : 'payload'}): ${cursor[i]!} -> ${replacement}`)
    }
  }
  t.same(acceptedChanges, [], 'no one-character change of the cursor text is accepted (an altered cursor is refused)')

  // Wrong MAC lengths, extra dots, no signature.
  const mac = macBytes
  t.equal(codec.decode(scope, `${payload}.${mac.subarray(0, 15).toString('base64url')}`), undefined, '15-byte MAC')
  t.equal(codec.decode(scope, `${payload}.${Buffer.concat([mac, Buffer.from([0])]).toString('base64url')}`), undefined, '17-byte MAC')
  t.equal(codec.decode(scope, `${payload}.`), undefined, 'empty MAC')
  t.equal(codec.decode(scope, payload), undefined, 'payload only')
  t.equal(codec.decode(scope, `${cursor}.`), undefined, 'a trailing dot')
  t.equal(codec.decode(scope, `${cursor}.${signature}`), undefined, 'a third part')
  t.equal(codec.decode(scope, `.${cursor}`), undefined, 'a leading dot')
  t.equal(codec.decode(scope, ''), undefined, 'empty string')
  t.equal(codec.decode(scope, 'garbage'), undefined, 'garbage')
  t.equal(codec.decode(scope, Buffer.from(JSON.stringify({ v: 1, u: userId.toHexString() })).toString('base64url')), undefined, 'base64url JSON without a signature')

  // A payload edited to another user, the signature kept: nobody signed it.
  const fields = JSON.parse(payloadBytes.toString('utf8')) as Record<string, unknown>
  const edited = Buffer.from(JSON.stringify({ ...fields, u: new ObjectId().toHexString() })).toString('base64url')
  t.equal(codec.decode(scope, `${edited}.${signature}`), undefined, 'payload edited to another user id, old signature')
})

t.test('cursor codec: a correctly signed payload that is not a position is refused (white box)', async (t) => {
  // Signs arbitrary payload text the way the codec does (HMAC-SHA256 over the
  // scope text, a newline and the payload, first 16 bytes), so the checks after
  // the signature are reached. First proven equal to the codec's own signature.
  const key = cursorKey('a-cursor-secret-of-at-least-32-characters!', undefined)
  const codec = createListCursorCodec(key)
  const organizationId = new ObjectId().toHexString()
  const scope: CursorScope = { organizationId, filters: { provider: 'twilio', label: undefined } }
  const scopeText = JSON.stringify([organizationId, [['label', null], ['provider', 'twilio']]])
  const sign = (payloadText: string): string => {
    const payload = Buffer.from(payloadText).toString('base64url')
    return `${payload}.${createHmac('sha256', key).update(scopeText).update('\n').update(payload).digest().subarray(0, 16).toString('base64url')}`
  }
  const userId = new ObjectId()
  const genuine = codec.encode(scope, { userId, phoneNumber: '+14165550101', provider: 'twilio' })
  const genuinePayload = Buffer.from(genuine.split('.')[0]!, 'base64url').toString('utf8')
  t.equal(sign(genuinePayload), genuine, 'this test signs exactly as the codec does')
  t.same(codec.decode(scope, sign(JSON.stringify({ v: 1, u: userId.toHexString() }))), { userId }, 'a well-formed payload signed here is accepted')

  const refused: Array<[string, string]> = [
    ['not JSON', 'this is not json'],
    ['JSON null', 'null'],
    ['a JSON number', '42'],
    ['a JSON string', '"text"'],
    ['another version', JSON.stringify({ v: 2, u: userId.toHexString() })],
    ['no version', JSON.stringify({ u: userId.toHexString() })],
    ['a user id that is not hex', JSON.stringify({ v: 1, u: 'zzzzzzzzzzzzzzzzzzzzzzzz' })],
    ['an upper-case user id', JSON.stringify({ v: 1, u: userId.toHexString().toUpperCase() })],
    ['a short user id', JSON.stringify({ v: 1, u: 'abc' })],
    ['a user id as an object', JSON.stringify({ v: 1, u: { $gt: '' } })],
    ['a number but no provider', JSON.stringify({ v: 1, u: userId.toHexString(), n: '+14165550101' })],
    ['a provider but no number', JSON.stringify({ v: 1, u: userId.toHexString(), p: 'twilio' })],
    ['a number that is not E.164', JSON.stringify({ v: 1, u: userId.toHexString(), n: '4165550101', p: 'twilio' })],
    ['an unknown provider', JSON.stringify({ v: 1, u: userId.toHexString(), n: '+14165550101', p: 'whatsapp' })]
  ]
  for (const [what, payloadText] of refused) {
    t.equal(codec.decode(scope, sign(payloadText)), undefined, `refused: ${what}`)
  }
})

t.test('cursorKey: derived deterministically from the token secret; cursorSecret wins; random otherwise', async (t) => {
  const first = cursorKey(undefined, 'token-secret-one-that-is-at-least-32-chars')
  t.ok(first.equals(cursorKey(undefined, 'token-secret-one-that-is-at-least-32-chars')), 'same token secret, same key (every process agrees)')
  t.notOk(first.equals(cursorKey(undefined, 'token-secret-two-that-is-at-least-32-chars')), 'another token secret, another key')
  t.notOk(first.equals(Buffer.from('token-secret-one-that-is-at-least-32-chars')), 'derived, not the token secret itself')
  t.equal(first.length, 32)
  t.ok(cursorKey(undefined, Buffer.from('token-secret-one-that-is-at-least-32-chars')).equals(first), 'a Buffer secret derives the same key as its text')
  t.ok(cursorKey('cursor-secret-that-is-at-least-32-characters', 'token-secret-one-that-is-at-least-32-chars').equals(Buffer.from('cursor-secret-that-is-at-least-32-characters')), 'cursorSecret is used when given')
  const randomA = cursorKey(undefined, undefined)
  const randomB = cursorKey(undefined, undefined)
  t.equal(randomA.length, 32)
  t.notOk(randomA.equals(randomB), 'no secret: a random key each time')

  const scope: CursorScope = { organizationId: new ObjectId().toHexString(), filters: {} }
  const position = { userId: new ObjectId() }
  const cursor = createListCursorCodec(first).encode(scope, position)
  t.same(createListCursorCodec(cursorKey(undefined, 'token-secret-one-that-is-at-least-32-chars')).decode(scope, cursor), position, 'a second process with the same token secret reads the cursor')
  t.equal(createListCursorCodec(cursorKey(undefined, 'token-secret-two-that-is-at-least-32-chars')).decode(scope, cursor), undefined, 'a process with another token secret does not')
})

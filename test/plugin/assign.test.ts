import t from 'tap'
import { ObjectId } from 'mongodb'
import { build, phoneNumbersUrl } from '../helper.js'

const NUMBER = '+14165550102'

t.test('assigns a new number and stores exactly the assignment', async (t) => {
  const { app, fixture, headers, phoneNumbersOf, userDocument } = await build(t)
  const before = await userDocument(fixture.userId)

  const response = await app.inject({
    method: 'POST',
    url: phoneNumbersUrl(fixture.organizationId),
    headers,
    payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER, label: 'Main Outbound' }
  })

  t.equal(response.statusCode, 200)
  const body = response.json()
  t.same(body, {
    success: true,
    message: 'twilio phone number assigned',
    assignment: {
      userId: fixture.userId,
      provider: 'twilio',
      phoneNumber: NUMBER,
      isDefault: true,
      isInboundEnabled: true,
      label: 'Main Outbound',
      createdAt: body.assignment.createdAt,
      updatedAt: body.assignment.createdAt
    }
  })
  t.match(body.assignment.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

  const stored = await phoneNumbersOf(fixture.userId)
  t.equal(stored.length, 1)
  t.same(stored[0], {
    provider: 'twilio',
    phoneNumber: NUMBER,
    isDefault: true,
    isInboundEnabled: true,
    label: 'Main Outbound',
    createdAt: new Date(body.assignment.createdAt),
    updatedAt: new Date(body.assignment.createdAt)
  })
  await app.orgPhoneNumbers.eventsFlushed()
  const after = await userDocument(fixture.userId)
  const { phoneNumbers: _list, phoneNumbersRevision, phoneNumbersOutbox, ...rest } = after ?? {}
  t.same(rest, before, 'nothing but the assignment array, its revision and the event outbox changed')
  t.equal(phoneNumbersRevision, 1)
  t.strictSame(phoneNumbersOutbox, [], 'the change event went through the outbox to the log')
})

t.test('updates an existing key in place, keeps createdAt, never duplicates', async (t) => {
  const { app, fixture, headers, phoneNumbersOf } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  const first = await app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider: 'sinch', phoneNumber: NUMBER, label: 'Old' } })
  t.equal(first.statusCode, 200)
  await new Promise((resolve) => setTimeout(resolve, 5))

  const second = await app.inject({
    method: 'POST',
    url,
    headers,
    payload: { targetUserId: fixture.userId, provider: 'sinch', phoneNumber: NUMBER, isInboundEnabled: false, isDefault: false, label: 'New' }
  })
  t.equal(second.statusCode, 200)

  const stored = await phoneNumbersOf(fixture.userId) as Array<Record<string, unknown>>
  t.equal(stored.length, 1)
  t.match(stored[0], { provider: 'sinch', phoneNumber: NUMBER, isDefault: false, isInboundEnabled: false, label: 'New' })
  t.same(stored[0]?.['createdAt'], new Date(first.json().assignment.createdAt), 'createdAt kept')
  t.ok((stored[0]?.['updatedAt'] as Date) > (stored[0]?.['createdAt'] as Date), 'updatedAt moved on')
})

t.test('the same number under another provider is another assignment, outbound only while the first routes inbound', async (t) => {
  const { app, fixture, headers, phoneNumbersOf } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  const assign = (provider: string, extra: Record<string, unknown> = {}) =>
    app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider, phoneNumber: NUMBER, ...extra } })
  t.equal((await assign('twilio')).statusCode, 200)
  const secondRoute = await assign('textgrid')
  t.equal(secondRoute.statusCode, 409, 'a second inbound route for the number is refused')
  t.equal(secondRoute.json().error, 'Inbound route held by another assignment')
  t.equal((await phoneNumbersOf(fixture.userId)).length, 1, 'and nothing was written')
  t.equal((await assign('textgrid', { isInboundEnabled: false })).statusCode, 200)
  const stored = await phoneNumbersOf(fixture.userId) as Array<Record<string, unknown>>
  t.same(stored.map((entry) => [entry['provider'], entry['isDefault'], entry['isInboundEnabled']]), [['twilio', true, true], ['textgrid', true, false]], 'one default per provider')
})

t.test('a new default clears the previous default of that provider only', async (t) => {
  const { app, fixture, headers, phoneNumbersOf } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  const assign = (provider: string, phoneNumber: string, extra: Record<string, unknown> = {}) =>
    app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider, phoneNumber, ...extra } })

  t.equal((await assign('twilio', '+14165550001')).statusCode, 200)
  t.equal((await assign('sinch', '+14165550002')).statusCode, 200)
  t.equal((await assign('twilio', '+14165550003', { isDefault: false })).statusCode, 200)
  t.equal((await assign('twilio', '+14165550004')).statusCode, 200)

  const stored = await phoneNumbersOf(fixture.userId) as Array<Record<string, unknown>>
  t.same(stored.map((entry) => [entry['provider'], entry['phoneNumber'], entry['isDefault']]), [
    ['twilio', '+14165550001', false],
    ['sinch', '+14165550002', true],
    ['twilio', '+14165550003', false],
    ['twilio', '+14165550004', true]
  ])
})

t.test('repeating a request gives the same answer and the same state, without a write', async (t) => {
  const { app, fixture, headers, userDocument } = await build(t)
  const request = { method: 'POST' as const, url: phoneNumbersUrl(fixture.organizationId), headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } }
  const first = await app.inject(request)
  const stateAfterFirst = await userDocument(fixture.userId)
  const second = await app.inject(request)
  t.equal(second.statusCode, 200)
  t.same(second.json(), first.json())
  t.same(await userDocument(fixture.userId), stateAfterFirst, 'document unchanged, revision included')
})

t.test('an omitted label removes the previous one (the request states the whole assignment)', async (t) => {
  const { app, fixture, headers, phoneNumbersOf } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  await app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER, label: 'Desk' } })
  await app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } })
  const stored = await phoneNumbersOf(fixture.userId) as Array<Record<string, unknown>>
  t.notOk('label' in (stored[0] ?? {}))
})

t.test('404 when the organization does not exist or the user is not in it', async (t) => {
  const { app, fixture, headers, userDocument } = await build(t)
  const missingOrg = await app.inject({
    method: 'POST',
    url: phoneNumbersUrl(new ObjectId().toHexString()),
    headers,
    payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER }
  })
  t.equal(missingOrg.statusCode, 404)
  t.same(missingOrg.json(), { error: 'Organization not found', details: 'No organization exists with the provided id' })

  for (const targetUserId of [fixture.foreignUserId, new ObjectId().toHexString()]) {
    const response = await app.inject({
      method: 'POST',
      url: phoneNumbersUrl(fixture.organizationId),
      headers,
      payload: { targetUserId, provider: 'twilio', phoneNumber: NUMBER }
    })
    t.equal(response.statusCode, 404)
    t.equal(response.json().error, 'Target user not found in organization')
  }
  t.notOk((await userDocument(fixture.foreignUserId))?.['phoneNumbers'], 'foreign user untouched')
})

t.test('mass assignment: unknown and dangerous body fields are accepted and never stored', async (t) => {
  const { app, fixture, headers, userDocument } = await build(t)
  const before = await userDocument(fixture.userId)
  const payload = JSON.stringify({
    targetUserId: fixture.userId,
    provider: 'twilio',
    phoneNumber: NUMBER,
    role: 'SUPERADMIN',
    organizationId: fixture.otherOrganizationId,
    _id: new ObjectId().toHexString(),
    $set: { role: 'SUPERADMIN' },
    'phoneNumbers.0.isDefault': false,
    'profile.name': 'Mallory',
    createdAt: '1970-01-01T00:00:00.000Z',
    phoneNumbersRevision: 999
  })
  const response = await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.organizationId), headers, payload })
  t.equal(response.statusCode, 200)

  const after = await userDocument(fixture.userId)
  const { phoneNumbers, phoneNumbersRevision, phoneNumbersOutbox: _outbox, ...rest } = after ?? {}
  t.same(rest, before, 'role, organizationId, _id and every other field unchanged')
  t.equal(phoneNumbersRevision, 1)
  const entries = phoneNumbers as Array<Record<string, unknown>>
  t.same(Object.keys(entries[0] ?? {}).sort(), ['createdAt', 'isDefault', 'isInboundEnabled', 'phoneNumber', 'provider', 'updatedAt'])
  t.not((entries[0]?.['createdAt'] as Date).getTime(), 0)
})

import Fastify from 'fastify'
import t from 'tap'
import { isDatabaseUnavailable, replyToFrameworkError, replyWithContractError } from '../../plugins/phone-numbers/error-handler.js'

// The handler on its own: real Fastify, real errors thrown by a route.
t.test('unexpected errors become 500 { error, details } with the request id, logged, nothing leaked', async (t) => {
  const logged: Array<Record<string, unknown>> = []
  const app = Fastify({
    logger: { level: 'error', stream: { write: (line: string) => { logged.push(JSON.parse(line)) } } }
  })
  app.setErrorHandler(replyWithContractError)
  app.get('/boom', async () => { throw new Error('connection string mongodb://admin:hunter2@db.internal:27017 failed') })
  app.get('/teapot', async () => { throw Object.assign(new Error('short and stout'), { statusCode: 418 }) })
  t.teardown(() => app.close())

  const boom = await app.inject({ method: 'GET', url: '/boom', headers: { 'x-request-id': 'abc' } })
  t.equal(boom.statusCode, 500)
  t.same(boom.json(), { error: 'Internal server error', details: `The request could not be completed (request id ${boom.json().details.match(/request id (.+)\)/)[1]})` })
  t.notMatch(boom.body, /hunter2|mongodb:|db\.internal|at /)
  const entry = logged.find((line) => line['msg'] === 'org-phone-numbers request failed')
  t.ok(entry, 'logged')
  t.match(entry, { reqId: /.+/, err: { message: /hunter2/ } }, 'the log keeps the detail, with the request id')

  const teapot = await app.inject({ method: 'GET', url: '/teapot' })
  t.equal(teapot.statusCode, 418)
  t.same(teapot.json(), { error: 'Request error', details: 'short and stout' })
})

t.test('driver errors that mean "database unreachable" are told apart by name', async (t) => {
  for (const name of ['MongoServerSelectionError', 'MongoNetworkError', 'MongoNetworkTimeoutError', 'MongoTopologyClosedError', 'MongoNotConnectedError', 'MongoPoolClearedError', 'MongoOperationTimeoutError']) {
    t.ok(isDatabaseUnavailable(Object.assign(new Error('x'), { name })), name)
  }
  t.notOk(isDatabaseUnavailable(Object.assign(new Error('x'), { name: 'MongoServerError' })))
})

// The README warns hosts: frameworkErrors is a server option, so it shapes the host's own routes too.
t.test('replyToFrameworkError answers router errors of every route of the server, the host\'s included', async (t) => {
  const plain = Fastify({ logger: false })
  const shaped = Fastify({ logger: false, frameworkErrors: replyToFrameworkError })
  t.teardown(() => plain.close())
  t.teardown(() => shaped.close())
  for (const app of [plain, shaped]) app.get('/things/:id', async () => ({ ok: true }))

  const url = `/things/${'x'.repeat(101)}`
  t.equal((await plain.inject({ method: 'GET', url })).statusCode, 414, 'Fastify alone: 414 for an overlong parameter')
  const answer = await shaped.inject({ method: 'GET', url })
  t.equal(answer.statusCode, 400, 'with replyToFrameworkError the host route answers 400')
  t.same(Object.keys(answer.json()).sort(), ['details', 'error'])
})

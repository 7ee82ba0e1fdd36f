/**
 * The standalone server as a user runs it: a real process, real port, real
 * database, configured through the environment.
 */
import { once } from 'node:events'
import { ObjectId } from 'mongodb'
import t from 'tap'
import { openapiDocument, openapiYaml } from '../../schemas/generated/openapi-document.js'
import { ConfigError, readConfig } from '../../server/config.js'
import { databaseNameOf } from '../../tools/database-uri.js'
import { mintToken } from '../../tools/tokens.js'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { spawnStandalone, startStandalone } from './helper-server.js'
import { seedFixture, TEST_SECRET } from '../helper.js'

t.test('configuration errors are reported together and stop the process', async (t) => {
  t.throws(() => readConfig({ PORT: 'abc', MONGODB_URI: 'postgres://x', LOG_LEVEL: 'loud', REQUEST_LOGGING: 'maybe', USERS_COLLECTION: 'a.b' }), ConfigError)
  try {
    readConfig({ PORT: 'abc', MONGODB_URI: 'mongodb://h/db', LOG_LEVEL: 'loud' })
    t.fail('should throw')
  } catch (error) {
    t.type(error, ConfigError)
    t.same((error as ConfigError).problems, [
      'JWT_SECRET is required when MONGODB_URI is set (at least 32 characters, e.g. `openssl rand -hex 32`)',
      'LOG_LEVEL=loud must be one of fatal, error, warn, info, debug, trace, silent',
      'PORT=abc must be an integer from 0 to 65535'
    ])
  }
  t.throws(() => readConfig({ JWT_SECRET: 'short' }), /JWT_SECRET must be at least 32 characters/)
  // The webhook: both variables or neither, an http(s) URL, a real secret; the rest has defaults.
  const hookSecret = 'a'.repeat(16) + 'b'.repeat(16)
  t.throws(() => readConfig({ WEBHOOK_URL: 'http://127.0.0.1:3000/' }), /WEBHOOK_URL and WEBHOOK_SECRET go together/)
  t.throws(() => readConfig({ WEBHOOK_URL: 'ftp://example.test/', WEBHOOK_SECRET: hookSecret }), /WEBHOOK_URL=ftp:\/\/example.test\/ must use http or https/)
  t.throws(() => readConfig({ WEBHOOK_URL: 'not a url', WEBHOOK_SECRET: hookSecret }), /must be an absolute http\(s\) URL/)
  t.throws(() => readConfig({ WEBHOOK_URL: 'http://127.0.0.1:3000/', WEBHOOK_SECRET: 'short' }), /WEBHOOK_SECRET must be at least 32 characters/)
  t.throws(() => readConfig({ EVENT_RETENTION_DAYS: '0' }), /EVENT_RETENTION_DAYS=0 must be an integer from 1/)
  t.same(readConfig({ WEBHOOK_URL: 'https://hooks.example.test/x', WEBHOOK_SECRET: hookSecret, WEBHOOK_MAX_ATTEMPTS: '3' }).webhook,
    { url: 'https://hooks.example.test/x', secret: hookSecret, maxAttempts: 3, retryBaseMs: 1000, retryMaxMs: 300_000, leaseMs: 30_000 })
  t.match(readConfig({ EVENT_RETENTION_DAYS: '30' }), { webhook: undefined, eventRetentionDays: 30, eventsCollection: 'phoneNumberEvents', eventVisibilityDelayMs: 1000 })
  t.match(readConfig({}), { port: 2212, host: '127.0.0.1', mongodbUri: undefined, usersCollection: 'users', serveOpenapi: true, requestLogging: true })
  t.match(readConfig({ REQUEST_LOGGING: '0', SERVE_OPENAPI: 'false', VERIFY_ROLE_IN_DATABASE: '1', BODY_LIMIT: '2048' }), { requestLogging: false, serveOpenapi: false, verifyRoleInDatabase: true, bodyLimit: 2048 })

  const { child, stderr: printed } = spawnStandalone({ PORT: '-1', MONGODB_URI: 'mongodb://127.0.0.1:1/x' })
  const [code] = await once(child, 'close')
  const stderr = printed.join('')
  t.equal(code, 1)
  t.match(stderr, /Invalid configuration:\n {2}- JWT_SECRET is required[\s\S]*PORT=-1 must be an integer/)
})

t.test('database names come from the URI path', async (t) => {
  t.equal(databaseNameOf('mongodb://127.0.0.1:27017/tether?retryWrites=true'), 'tether')
  t.equal(databaseNameOf('mongodb+srv://user:p%40ss@cluster.example.net/app'), 'app')
  t.equal(databaseNameOf('mongodb://a:1,b:2/?replicaSet=rs'), undefined)
  t.equal(databaseNameOf('mongodb://127.0.0.1:27017'), undefined)
})

t.test('serves the API, the contract and health; SIGTERM shuts it down cleanly', async (t) => {
  const { db, dbName } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const server = await startStandalone({ LOG_LEVEL: 'info', MONGODB_URI: uriForDatabase(dbName), JWT_SECRET: TEST_SECRET, REQUEST_LOGGING: 'true' })
  t.teardown(() => { server.child.kill('SIGKILL') })

  const health = await fetch(`${server.base}/health`)
  t.equal(health.status, 200)
  t.same(await health.json(), { status: 'ok', database: 'up' })

  const json = await fetch(`${server.base}/openapi.json`)
  t.match(json.headers.get('content-type'), /^application\/json/)
  t.same(await json.json(), openapiDocument)
  const yaml = await fetch(`${server.base}/openapi.yaml`)
  t.match(yaml.headers.get('content-type'), /^application\/yaml/)
  t.equal(await yaml.text(), openapiYaml, 'the YAML exactly as written')

  const token = await mintToken(TEST_SECRET, { sub: fixture.adminId, role: 'SUPERADMIN' })
  const assigned = await fetch(`${server.base}/api/organizations/${fixture.organizationId}/phone-numbers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-request-id': 'trace-me-42' },
    body: JSON.stringify({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' })
  })
  t.equal(assigned.status, 200)
  t.match(await assigned.json(), { success: true, message: 'twilio phone number assigned' })
  t.match((await db.collection('users').findOne({ _id: new ObjectId(fixture.userId) }))?.['phoneNumbers'], [{ phoneNumber: '+14165550102' }])
  t.match(server.output(), /"reqId":"trace-me-42"/, 'request ids in the logs, taken from x-request-id')

  server.child.kill('SIGTERM')
  // 'close', not 'exit': the child's stdout may still hold its last lines when it exits.
  const [code] = await once(server.child, 'close')
  t.equal(code, 0, 'clean exit on SIGTERM')
  // Ordered by the lines' own times: the two may reach the pipe in either order (seen once in CI).
  const timeOf = (message: string): number | undefined => server.logs.find((line) => line['msg'] === message)?.['time'] as number | undefined
  const shuttingDown = timeOf('shutting down: finishing in-flight requests')
  const stopped = timeOf('stopped')
  t.ok(shuttingDown !== undefined && stopped !== undefined && shuttingDown <= stopped, 'logs the shutdown, then that it stopped', { shuttingDown, stopped })
})

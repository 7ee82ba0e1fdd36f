/**
 * Regressions from the schemathesis run (scripts/reliability/fuzz.ts) against
 * the standalone server, reproduced on the real process (server/server.ts),
 * because the failing answers come from Fastify's router, before any route
 * or the plugin's error handler runs.
 */
import t from 'tap'
import { testServerUri, uniqueDatabaseName, uriForDatabase } from '../helper-database.js'
import { startStandalone } from './helper-server.js'
import { createSigner } from '../helper.js'

const secret = 'standalone-contract-secret-at-least-32-chars'

t.test('the standalone server answers overlong and undecodable path parameters with the contract\'s 400 { error, details }', async (t) => {
  // (tap's coverage of this child is kept out of the report by test/coverage-map.mjs.)
  const { child, base } = await startStandalone({ MONGODB_URI: uriForDatabase(uniqueDatabaseName(), testServerUri()), JWT_SECRET: secret, LOG_LEVEL: 'silent' })
  t.teardown(async () => {
    if (child.exitCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await gone
    }
  })
  const signer = await createSigner(secret)
  t.teardown(() => signer.close())
  const authorization = `Bearer ${signer.sign({ sub: '5f7b1c2e8a1d4e0012c3b4a1', role: 'SUPERADMIN' })}`

  const cases: Array<[string, string]> = [
    // Found by schemathesis: a 101+ character organizationId is 414 (undocumented) with Fastify's own body.
    ['organizationId longer than 100 characters (maxParamLength)', `/api/organizations/${'a'.repeat(101)}/phone-numbers`],
    ['organizationId with multi-byte characters over 100 bytes', `/api/organizations/${encodeURIComponent('Ṱ̺̺̕o͞ '.repeat(30))}/phone-numbers`],
    // Same family: an undecodable percent-escape is 400 with { error, code, message, statusCode }, no details.
    ['organizationId with a broken percent-escape', '/api/organizations/%E0%A4%A/phone-numbers']
  ]
  for (const [name, path] of cases) {
    t.test(name, async (t) => {
      for (const method of ['GET', 'POST', 'DELETE']) {
        const response = await fetch(`${base}${path}`, {
          method,
          headers: { authorization, 'content-type': 'application/json' },
          ...(method === 'GET' ? {} : { body: JSON.stringify({ targetUserId: '5f7b1c2e8a1d4e0012c3b4a6', provider: 'twilio', phoneNumber: '+14165550102' }) })
        })
        const body = await response.json() as Record<string, unknown>
        t.equal(response.status, 400, `${method}: status`)
        t.type(body['error'], 'string', `${method}: error`)
        t.type(body['details'], 'string', `${method}: details`)
      }
    })
  }
})

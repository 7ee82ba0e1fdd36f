/**
 * Every route the standalone app registers is in the OpenAPI document with the
 * same method, path, parameters, body and responses, and every operation of
 * the document is registered. (contract-equivalence-schemas.test.ts proves the
 * generated schemas equal the document's; this closes the loop to Fastify.)
 */
import Fastify, { type RouteOptions } from 'fastify'
import t from 'tap'
import { operations } from '../../schemas/generated/typebox.js'
import { openapiDocument } from '../../schemas/generated/openapi-document.js'
import app from '../../server/app.js'
import { uniqueDatabaseName, uriForDatabase } from '../helper-database.js'
import { TEST_SECRET } from '../helper.js'

const HTTP_METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options']
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value ?? null))

t.test('registered routes and documented operations are the same set, with the same schemas', async (t) => {
  const server = Fastify({ logger: false })
  const registered: RouteOptions[] = []
  server.addHook('onRoute', (route) => { registered.push(route) })
  await server.register(app, {
    mongodbUri: uriForDatabase(uniqueDatabaseName()),
    defaultDatabaseName: 'unused',
    serverSelectionTimeoutMs: 2000,
    phoneNumbers: { auth: { secret: TEST_SECRET }, serveOpenapi: true, createIndexes: false }
  })
  await server.ready()
  t.teardown(() => server.close())

  const documented = new Map<string, Record<string, unknown>>()
  const paths = openapiDocument['paths'] as Record<string, Record<string, Record<string, unknown>>>
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (HTTP_METHODS.includes(method)) documented.set(`${method.toUpperCase()} ${path}`, operation)
    }
  }

  const seen = new Set<string>()
  for (const route of registered) {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    for (const method of methods) {
      if (method === 'HEAD') continue // Fastify adds HEAD for every GET (exposeHeadRoutes)
      const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
      const key = `${method} ${path}`
      const operation = documented.get(key)
      t.ok(operation, `${key} is documented`)
      if (operation === undefined) continue
      seen.add(key)
      const operationId = operation['operationId'] as keyof typeof operations
      const expected = operations[operationId]
      t.equal(expected.method, method, `${key}: method`)
      t.same(asJson(route.schema), asJson(expected.schema), `${key}: params, querystring, body and response schemas`)
    }
  }
  t.same([...documented.keys()].filter((key) => !seen.has(key)), [], 'every documented operation is registered')
  t.equal(seen.size, documented.size)
})

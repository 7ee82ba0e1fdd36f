// The TypeBox schemas in schemas/generated/typebox.ts are the same JSON Schema
// as schemas/openapi.yaml (after the OpenAPI -> JSON Schema normalisation in
// contract-equivalence-helper.ts): the document module, every component schema,
// enums, and every operation's Fastify route object.
import { test } from 'tap'
import * as generated from '../../schemas/generated/typebox.js'
import { openapiDocument, openapiYaml } from '../../schemas/generated/openapi-document.js'
import { pascalCase } from '../../scripts/contract-codegen/index.js'
import { componentSchema, componentSchemas, doc, exported, get, isRecord, normalise, plain, resolvePointer, yamlText, type Json } from './contract-equivalence-helper.js'

test('document module: exact YAML text and the parsed document', async (t) => {
  t.equal(openapiYaml, yamlText)
  t.same(openapiDocument, doc)
})

test('every component schema deep-equals its OpenAPI definition', async (t) => {
  const names = Object.keys(componentSchemas)
  t.ok(names.length >= 7)
  for (const name of names) {
    t.same(plain(componentSchema(name)), normalise(componentSchemas[name]), name)
  }
})

test('string and boolean enums are `enum`, never anyOf/const', async (t) => {
  const assign = plain(generated.OrgAssignPhoneNumberRequest)
  t.same(get(assign, 'properties', 'provider'), {
    type: 'string',
    enum: ['twilio', 'sinch', 'textgrid'],
    description: 'Voice provider that carries the number.'
  })
  t.same(get(plain(generated.OrgPhoneNumberMutationResponse), 'properties', 'success'), { type: 'boolean', enum: [true] })
  // The one anyOf allowed: OpenAPI's `nullable: true`, as [schema, null].
  const anyOfs: unknown[][] = []
  const collect = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(collect)
    else if (isRecord(node)) {
      if (Array.isArray(node['anyOf'])) anyOfs.push(node['anyOf'])
      Object.values(node).forEach(collect)
    }
  }
  collect(plain(generated.operations))
  t.ok(anyOfs.length > 0)
  t.ok(anyOfs.every((anyOf) => anyOf.length === 2 && JSON.stringify(anyOf[1]) === '{"type":"null"}'), 'anyOf only for nullable', { anyOfs })
  t.notOk(JSON.stringify(plain(generated.operations)).includes('"const"'))
})

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

test('every operation maps onto its Fastify route object', async (t) => {
  const routes = generated.operations as unknown as Record<string, { method: string, url: string, schema: Json }>
  const seen: string[] = []
  for (const [path, item] of Object.entries(get(doc, 'paths') as Json)) {
    for (const method of METHODS) {
      const op = get(item, method)
      if (!isRecord(op)) continue
      const operationId = String(op.operationId)
      seen.push(operationId)
      const route = routes[operationId]
      if (route === undefined) {
        t.fail(`no route object for ${operationId}`)
        continue
      }
      t.equal(route.method, method.toUpperCase(), `${operationId} method`)
      t.equal(route.url, path.replace(/\{(\w+)\}/g, ':$1'), `${operationId} url`)
      t.equal(route.schema.operationId, operationId)
      t.equal(exported[pascalCase(operationId)], route, `${operationId} is exported as ${pascalCase(operationId)}`)

      // Parameters -> params / querystring object schemas.
      const parameters = (Array.isArray(op.parameters) ? op.parameters : []) as Json[]
      for (const [slot, location] of [['params', 'path'], ['querystring', 'query']] as const) {
        const mine = parameters.filter((p) => p.in === location)
        if (mine.length === 0) {
          t.equal(route.schema[slot], undefined, `${operationId} has no ${slot}`)
          continue
        }
        const required = mine.filter((p) => p.required === true).map((p) => String(p.name))
        const expected: Json = {
          type: 'object',
          properties: Object.fromEntries(mine.map((p) => [String(p.name), {
            ...(normalise(p.schema) as Json),
            ...(typeof p.description === 'string' ? { description: p.description } : {})
          }]))
        }
        if (required.length > 0) expected.required = required.sort()
        t.same(plain(route.schema[slot]), expected, `${operationId} ${slot}`)
      }

      // requestBody -> body
      const bodySchema = get(op, 'requestBody', 'content', 'application/json', 'schema')
      if (bodySchema === undefined) t.equal(route.schema.body, undefined, `${operationId} has no body`)
      else t.same(plain(route.schema.body), normalise(bodySchema), `${operationId} body`)

      // responses (through components.responses) -> response[status]
      const responses = get(op, 'responses') as Json
      const routeResponses = route.schema.response as Json
      t.same(Object.keys(routeResponses).sort(), Object.keys(responses).sort(), `${operationId} response codes`)
      for (const [status, value] of Object.entries(responses)) {
        const response = isRecord(value) && typeof value.$ref === 'string' ? resolvePointer(value.$ref) : value
        const firstContent = Object.values(get(response, 'content') as Json)[0]
        t.same(plain(routeResponses[status]), normalise(get(firstContent, 'schema')), `${operationId} ${status}`)
      }
    }
  }
  t.same(Object.keys(routes).sort(), seen.sort(), 'operations lists exactly the contract operations')
  t.equal(generated.operationRoutes, generated.operations)
})

// The TypeBox schemas in schemas/generated/typebox.ts are the same JSON Schema
// as schemas/openapi.yaml (after the OpenAPI -> JSON Schema normalisation
// below), they compile with Ajv, and they accept/reject what the contract does.
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'
import { test } from 'tap'
import { parse } from 'yaml'
import * as generated from '../../schemas/generated/typebox.js'
import { openapiDocument, openapiYaml } from '../../schemas/generated/openapi-document.js'
import {
  ContractCodegenError,
  collectOperations,
  convertSchema,
  dependencyOrder,
  fastifyUrl,
  generateFiles,
  pascalCase,
  quoteString
} from '../../scripts/contract-codegen/index.js'

type Json = Record<string, unknown>
// ajv-formats is CommonJS with `exports.default`; under NodeNext its default import is the module object.
const addFormats = addFormatsModule.default

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const yamlText = await readFile(join(root, 'schemas/openapi.yaml'), 'utf8')
const doc = parse(yamlText) as Json

function isRecord (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function get (value: unknown, ...keys: string[]): unknown {
  let current = value
  for (const key of keys) current = isRecord(current) ? current[key] : undefined
  return current
}

/** Follows a local `#/...` JSON pointer in the document. */
function resolvePointer (ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`non-local $ref ${ref}`)
  return get(doc, ...ref.slice(2).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')))
}

/**
 * OpenAPI 3.0 schema -> the JSON Schema Fastify should see: `$ref` resolved
 * inline (its siblings ignored, as OpenAPI 3.0 says), `example`, `externalDocs`,
 * `xml` and `x-*` dropped, `nullable: true` -> anyOf [schema, null], and
 * `required` treated as a set (sorted).
 */
function normalise (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(normalise)
  if (!isRecord(node)) return node
  if (typeof node.$ref === 'string') return normalise(resolvePointer(node.$ref))
  // `allOf: [one schema]` alone is that schema (OpenAPI 3.0's way to make a $ref nullable).
  const keys = Object.keys(node).filter((key) => key !== 'nullable')
  if (keys.length === 1 && Array.isArray(node.allOf) && node.allOf.length === 1) {
    const only = normalise(node.allOf[0])
    return node.nullable === true ? { anyOf: [only, { type: 'null' }] } : only
  }
  const out: Json = {}
  for (const [key, value] of Object.entries(node)) {
    if (key === 'example' || key === 'externalDocs' || key === 'xml' || key.startsWith('x-') || key === 'nullable') continue
    out[key] = key === 'properties' && isRecord(value)
      ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v)]))
      : key === 'required' && Array.isArray(value) ? [...value].sort() : normalise(value)
  }
  return node.nullable === true ? { anyOf: [out, { type: 'null' }] } : out
}

/** TypeBox schema -> plain JSON (drops TypeBox's symbol keys), `required` sorted. */
function plain (schema: unknown): unknown {
  return sortRequired(JSON.parse(JSON.stringify(schema)))
}

function sortRequired (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(sortRequired)
  if (!isRecord(node)) return node
  return Object.fromEntries(Object.entries(node).map(([k, v]) =>
    [k, k === 'required' && Array.isArray(v) ? [...v].sort() : sortRequired(v)]))
}

const componentSchemas = get(doc, 'components', 'schemas') as Json
const exported = generated as unknown as Record<string, unknown>

function componentSchema (name: string): TSchema {
  const schema = exported[name]
  if (!isRecord(schema)) throw new Error(`schemas/generated/typebox.ts has no ${name}`)
  return schema as TSchema
}

function newAjv (): Ajv {
  const ajv = new Ajv({ strict: true, coerceTypes: false, allErrors: true })
  addFormats(ajv)
  return ajv
}

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

test('every schema compiles with Ajv (strict) and component examples validate', async (t) => {
  const ajv = newAjv()
  for (const name of Object.keys(componentSchemas)) {
    const schema = componentSchema(name)
    const validate = ajv.compile(schema)
    const example = get(componentSchemas, name, 'example')
    if (example === undefined) continue
    t.ok(validate(example), `${name} example (ajv) ${ajv.errorsText(validate.errors)}`)
    t.ok(Value.Check(schema, example), `${name} example (Value.Check)`)
  }
  for (const route of Object.values(generated.operations)) {
    const schema = route.schema as Json
    for (const slot of ['params', 'querystring', 'body'] as const) {
      if (schema[slot] !== undefined) t.doesNotThrow(() => ajv.compile(schema[slot] as TSchema), `${route.schema.operationId} ${slot}`)
    }
    for (const [status, response] of Object.entries(schema.response as Json)) {
      t.doesNotThrow(() => ajv.compile(response as TSchema), `${route.schema.operationId} ${status}`)
    }
  }
})

test('invalid assign bodies are rejected (coercion off)', async (t) => {
  const validate = newAjv().compile(generated.OrgAssignPhoneNumberRequest)
  const valid = { targetUserId: '5f7b1c2e8a1d4e0012c3b4a6', provider: 'twilio', phoneNumber: '+14165550102' }
  t.ok(validate(valid), 'the minimal body is valid')
  t.ok(validate({ ...valid, label: 'x'.repeat(64), isDefault: false, extra: 1 }), '64-char label and extra properties are allowed')
  const invalid: Array<[string, Json]> = [
    ['bad ObjectId', { ...valid, targetUserId: '5f7b1c2e8a1d4e0012c3b4aZ' }],
    ['short ObjectId', { ...valid, targetUserId: '5f7b1c2e' }],
    ['unknown provider', { ...valid, provider: 'vonage' }],
    ['non-E.164 number', { ...valid, phoneNumber: '4165550102' }],
    ['E.164 with leading zero', { ...valid, phoneNumber: '+04165550102' }],
    ['label of 65 chars', { ...valid, label: 'x'.repeat(65) }],
    ['isDefault as the string "true"', { ...valid, isDefault: 'true' }],
    ['missing phoneNumber', { targetUserId: valid.targetUserId, provider: 'twilio' }]
  ]
  for (const [why, body] of invalid) {
    t.notOk(validate(body), `ajv rejects: ${why}`)
    t.notOk(Value.Check(generated.OrgAssignPhoneNumberRequest, body), `Value.Check rejects: ${why}`)
  }
  const compiled = TypeCompiler.Compile(generated.OrgAssignPhoneNumberRequest)
  t.ok(compiled.Check(valid), 'TypeCompiler accepts the minimal body')
  t.notOk(compiled.Check({ ...valid, provider: 'vonage' }), 'TypeCompiler rejects an unknown provider')
  const anyObject = generated.GetOpenapiJson.schema.response[200]
  t.ok(Value.Check(anyObject, { openapi: '3.0.3' }), 'free-form object accepts an object')
  t.notOk(Value.Check(anyObject, []), 'free-form object rejects an array')
  t.notOk(Value.Check(anyObject, null), 'free-form object rejects null')
  const assignment = generated.PhoneNumberAssignment
  const stored = { userId: valid.targetUserId, provider: 'sinch', phoneNumber: valid.phoneNumber, isDefault: true, isInboundEnabled: false, createdAt: '2026-01-05T10:00:00Z', updatedAt: '2026-01-05T10:00:00.123+01:00' }
  t.ok(Value.Check(assignment, stored), 'date-time values pass Value.Check')
  t.notOk(Value.Check(assignment, { ...stored, createdAt: '2026-01-05' }), 'a date is not a date-time')
  t.notOk(Value.Check(assignment, { ...stored, createdAt: '2026-13-05T10:00:00Z' }), 'month 13 is not a date-time')
  const list = newAjv().compile(generated.GetOrganizationsPhoneNumbers.schema.querystring)
  t.ok(list({}), 'the list query is optional')
  t.notOk(list({ provider: 'nope' }), 'the list query provider is an enum')
})

test('converter: keywords outside the contract used today', async (t) => {
  const ctx = { components: new Set(['A']), kinds: new Set<string>(), formats: new Set<string>() }
  const run = (schema: unknown): string => convertSchema(schema, ctx, 'test')
  t.equal(run({ type: 'string', nullable: true }), 'Type.Union([Type.String(), Type.Null()])')
  t.equal(run({ type: 'string', nullable: false, example: 'x', 'x-y': 1 }), 'Type.String()')
  t.equal(run({ type: 'integer', minimum: 1, exclusiveMinimum: true, maximum: 9, exclusiveMaximum: false }), 'Type.Integer({ exclusiveMinimum: 1, maximum: 9 })')
  t.equal(run({ type: 'number', enum: [1, 2] }), "Type.Unsafe<1 | 2>({ [Kind]: 'ContractEnum', type: 'number', enum: [1, 2] })")
  t.equal(run({ allOf: [{ $ref: '#/components/schemas/A' }], description: 'd' }), "Type.Intersect([A], { description: 'd' })")
  t.equal(run({ anyOf: [{ type: 'string' }, { type: 'number' }] }), 'Type.Union([Type.String(), Type.Number()])')
  t.equal(run({ type: 'array', items: { type: 'boolean' }, maxItems: 2 }), 'Type.Array(Type.Boolean(), { maxItems: 2 })')
  t.equal(run({ type: 'object', properties: {} }), 'Type.Object({})')
  t.equal(run({ type: 'object' }), "Type.Unsafe<Record<string, unknown>>({ [Kind]: 'ContractObject', type: 'object' })")
  t.same([...ctx.kinds].sort(), ['ContractEnum', 'ContractObject'], 'the custom kinds used are recorded')
  t.equal(run({ type: 'object', properties: { 'a-b': { type: 'string' } }, additionalProperties: { type: 'number' } }),
    "Type.Object({\n  'a-b': Type.Optional(Type.String())\n}, { additionalProperties: Type.Number() })")
  t.equal(quoteString('it\'s "x"'), '\'it\\\'s "x"\'')
  t.equal(fastifyUrl('/a/{b}/c/{d}'), '/a/:b/c/:d')
  t.equal(pascalCase('get_openapi_json'), 'GetOpenapiJson')
  t.same(dependencyOrder({ B: { $ref: '#/components/schemas/A' }, A: { type: 'string' } }), ['A', 'B'])

  const errors: Array<[string, () => unknown]> = [
    ['oneOf', () => run({ oneOf: [{ type: 'string' }] })],
    ['unprintable default', () => run({ type: 'string', default: undefined })],
    ['unknown keyword', () => run({ type: 'string', const: 'x' })],
    ['unknown type', () => run({ type: 'null' })],
    ['no type', () => run({ description: 'x' })],
    ['not an object', () => run('string')],
    ['external $ref', () => run({ $ref: 'other.yaml#/X' })],
    ['unknown component', () => run({ $ref: '#/components/schemas/Nope' })],
    ['bad combinator', () => run({ allOf: {} })],
    ['empty enum', () => run({ type: 'string', enum: [] })],
    ['enum of the wrong type', () => run({ type: 'string', enum: [1] })],
    ['exclusiveMinimum without minimum', () => run({ type: 'number', exclusiveMinimum: true })],
    ['array without items', () => run({ type: 'array' })],
    ['bad additionalProperties', () => run({ type: 'object', properties: {}, additionalProperties: 'yes' })],
    ['bad required', () => run({ type: 'object', properties: {}, required: [1] })],
    ['required not in properties', () => run({ type: 'object', properties: {}, required: ['a'] })],
    ['required without properties', () => run({ type: 'object', required: ['a'] })],
    ['closed object without properties', () => run({ type: 'object', additionalProperties: false })],
    ['format without a TypeBox check', () => run({ type: 'string', format: 'email' })],
    ['schema additionalProperties without properties', () => run({ type: 'object', additionalProperties: { type: 'string' } })],
    ['recursive components', () => dependencyOrder({ A: { $ref: '#/components/schemas/A' } })],
    ['dangling component ref', () => dependencyOrder({ A: { $ref: '#/components/schemas/B' } })]
  ]
  for (const [why, fn] of errors) t.throws(fn, ContractCodegenError, why)
})

test('converter: operation mapping beyond the contract used today', async (t) => {
  const ops = collectOperations({
    components: {
      parameters: { Trace: { in: 'header', name: 'X-Trace', required: true, schema: { type: 'string' } } },
      requestBodies: { Body: { content: { 'application/json': { schema: { type: 'string' } } } } },
      responses: { Empty: { description: 'nothing' } }
    },
    paths: {
      '/x/{id}': {
        parameters: [{ in: 'path', name: 'id', schema: { type: 'string' } }],
        put: {
          operationId: 'put-x',
          parameters: [{ $ref: '#/components/parameters/Trace' }],
          requestBody: { $ref: '#/components/requestBodies/Body' },
          responses: { '2XX': { content: { 'text/plain': { schema: { type: 'string' } } } }, 204: { $ref: '#/components/responses/Empty' }, 500: { content: {} } }
        }
      }
    }
  })
  t.same(ops, [{
    operationId: 'put-x',
    exportName: 'PutX',
    method: 'PUT',
    path: '/x/{id}',
    url: '/x/:id',
    params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
    headers: { type: 'object', properties: { 'x-trace': { type: 'string' } }, required: ['x-trace'] },
    body: { type: 'string' },
    response: [['2xx', { type: 'string' }]]
  }])
  const bad: Array<[string, Json]> = [
    ['no operationId', { paths: { '/': { get: { responses: {} } } } }],
    ['cookie parameter', { paths: { '/': { get: { operationId: 'a', parameters: [{ in: 'cookie', name: 'c', schema: {} }] } } } }],
    ['parameter without schema', { paths: { '/': { get: { operationId: 'a', parameters: [{ in: 'query', name: 'c' }] } } } }],
    ['non-JSON request body', { paths: { '/': { post: { operationId: 'a', requestBody: { content: { 'text/plain': {} } } } } } }],
    ['foreign $ref', { paths: { '/': { get: { operationId: 'a', parameters: [{ $ref: '#/components/schemas/P' }] } } } }]
  ]
  for (const [why, document] of bad) t.throws(() => collectOperations(document), ContractCodegenError, why)

  const clash = 'openapi: 3.0.3\ninfo: { title: t, version: "1" }\npaths:\n  /a:\n    get:\n      operationId: A\n      responses: {}\ncomponents:\n  schemas:\n    A: { type: string }\n'
  await t.rejects(generateFiles(clash), ContractCodegenError, 'an operation named like a component')
  const noResponses = await generateFiles('openapi: 3.0.3\ninfo: { title: t, version: "1" }\npaths:\n  /a:\n    get:\n      operationId: a\n      responses: {}\n')
  t.match(noResponses['schemas/generated/typebox.ts'], /response: \{\}/)
  await t.rejects(generateFiles('components:\n  schemas:\n    a-b: { type: string }\n'), ContractCodegenError, 'component names must be identifiers')
  await t.rejects(generateFiles('- not an object\n'), ContractCodegenError, 'the document must be an object')
})

// The OpenAPI -> TypeBox converter (scripts/contract-codegen) beyond what the
// contract uses today: other keywords, other operation shapes, and its errors.
import { test } from 'tap'
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
import type { Json } from './contract-equivalence-helper.js'

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

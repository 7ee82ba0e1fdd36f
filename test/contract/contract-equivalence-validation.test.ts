// The TypeBox schemas in schemas/generated/typebox.ts compile with Ajv, and
// they accept/reject what the contract (schemas/openapi.yaml) does.
import { type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'
import { test } from 'tap'
import * as generated from '../../schemas/generated/typebox.js'
import { componentSchema, componentSchemas, get, newAjv, type Json } from './contract-equivalence-helper.js'

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

// A client validating with TypeBox (Value.Errors or a compiled checker) is told
// which values an enum allows, and loading the schemas keeps the host's own
// TypeBox error messages for everything else.
import t from 'tap'
import { Kind, Type, TypeRegistry } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { DefaultErrorFunction, SetErrorFunction, ValueErrorType } from '@sinclair/typebox/errors'
import { Value } from '@sinclair/typebox/value'

// The host set its own error function before loading the schemas (hence the
// dynamic import): the schemas must delegate every other message to it.
SetErrorFunction((error) => error.errorType === ValueErrorType.StringPattern ? 'host: bad pattern' : DefaultErrorFunction(error))
const { OrgAssignPhoneNumberRequest, OrgPhoneNumberMutationResponse, PostOrganizationsPhoneNumbers } = await import('../../schemas/index.js')

const valid = { targetUserId: '0123456789abcdef01234567', provider: 'twilio', phoneNumber: '+14165550102' }
const allowed = "Expected one of 'twilio', 'sinch', 'textgrid'"

function messages (errors: Iterable<{ path: string, message: string }>): string[] {
  return [...errors].map((e) => `${e.path} ${e.message}`)
}

t.test('Value.Errors names the allowed providers', async (t) => {
  t.same(messages(Value.Errors(OrgAssignPhoneNumberRequest, { ...valid, provider: 'nexmo' })), [`/provider ${allowed}`])
})

t.test('a compiled checker names the allowed providers', async (t) => {
  const checker = TypeCompiler.Compile(OrgAssignPhoneNumberRequest)
  t.notOk(checker.Check({ ...valid, provider: 'nexmo' }))
  t.same(messages(checker.Errors({ ...valid, provider: 'nexmo' })), [`/provider ${allowed}`])
  t.same(messages(TypeCompiler.Compile(PostOrganizationsPhoneNumbers.schema.body).Errors({ ...valid, provider: 42 })), [`/provider ${allowed}`],
    'the route body schema too, whatever the wrong value')
})

t.test('a one-value enum names its value', async (t) => {
  t.same(messages(Value.Errors(OrgPhoneNumberMutationResponse, { success: false, message: 'no' })), ['/success Expected true'])
})

t.test('every other message comes from the error function set before', async (t) => {
  t.same(messages(Value.Errors(OrgAssignPhoneNumberRequest, { ...valid, phoneNumber: '555' })), ['/phoneNumber host: bad pattern'])
  t.same(messages(Value.Errors(OrgAssignPhoneNumberRequest, { ...valid, targetUserId: 7 })), ['/targetUserId Expected string'])
  // Another kind, registered by the host, keeps TypeBox's message.
  TypeRegistry.Set('HostKind', () => false)
  t.same(messages(Value.Errors(Type.Unsafe<string>({ [Kind]: 'HostKind' }), 'x')), [" Expected kind 'HostKind'"])
})

t.test('the JSON Schema Ajv sees is unchanged', async (t) => {
  t.same(JSON.parse(JSON.stringify(OrgAssignPhoneNumberRequest.properties.provider)),
    { type: 'string', enum: ['twilio', 'sinch', 'textgrid'], description: 'Voice provider that carries the number.' })
})

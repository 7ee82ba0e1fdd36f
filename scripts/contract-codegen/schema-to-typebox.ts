// Converts one OpenAPI 3.0 schema object into the source of a TypeBox expression.
import { ContractCodegenError, SCHEMA_REF_PREFIX, asRecord, isRecord, type JsonRecord } from './common.js'
import { printInline, printKey, printOptions, printOptionsWithCode } from './literals.js'
import { ENUM_KIND, FORMAT_CHECKS, OBJECT_KIND } from './prelude.js'

/** OpenAPI-only or annotation keywords that are not emitted. */
const DROPPED_KEYWORDS = new Set(['example', 'externalDocs', 'xml'])
/** Annotation keywords kept on every schema (Ajv knows them). */
const ANNOTATION_KEYWORDS = ['title', 'description', 'default', 'deprecated', 'readOnly', 'writeOnly'] as const

const KEYWORDS_BY_TYPE: Record<string, readonly string[]> = {
  string: ['minLength', 'maxLength', 'pattern', 'format'],
  number: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'format'],
  integer: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'format'],
  boolean: [],
  array: ['minItems', 'maxItems', 'uniqueItems'],
  object: ['minProperties', 'maxProperties'],
}

export interface ConvertContext {
  /** Component schema names that may be referenced. */
  components: ReadonlySet<string>
  /** Custom kinds and formats the emitted code relies on. */
  kinds: Set<string>
  formats: Set<string>
}

function refTarget (ref: unknown, where: string): string {
  if (typeof ref !== 'string' || !ref.startsWith(SCHEMA_REF_PREFIX)) {
    throw new ContractCodegenError(where, `unsupported $ref ${String(ref)}`)
  }
  return ref.slice(SCHEMA_REF_PREFIX.length)
}

/** Splits a schema into its kept keywords, checking that nothing is silently lost. */
function keptKeywords (schema: JsonRecord, allowed: readonly string[], where: string): JsonRecord {
  const out: JsonRecord = {}
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-') || DROPPED_KEYWORDS.has(key)) continue
    if (allowed.includes(key)) {
      out[key] = value
      continue
    }
    throw new ContractCodegenError(where, `unsupported keyword "${key}"`)
  }
  return out
}

/** OpenAPI 3.0 boolean exclusiveMinimum/Maximum -> JSON Schema draft-07 numbers. */
function numericBounds (options: JsonRecord, where: string): void {
  for (const [exclusive, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
    const flag = options[exclusive]
    if (flag === undefined) continue
    if (flag === false) {
      delete options[exclusive]
    } else if (flag === true) {
      if (typeof options[bound] !== 'number') throw new ContractCodegenError(where, `${exclusive} without ${bound}`)
      options[exclusive] = options[bound]
      delete options[bound]
    }
  }
}

function printUnsafe (kind: string, staticType: string, schema: JsonRecord): string {
  const rest = printInline(schema).slice(1)
  return `Type.Unsafe<${staticType}>({ [Kind]: '${kind}',${rest})`
}

function literalUnion (values: readonly unknown[]): string {
  return values.map((v) => printInline(v)).join(' | ')
}

export function convertSchema (input: unknown, ctx: ConvertContext, where: string, indent = ''): string {
  const schema = asRecord(input, where)

  if ('$ref' in schema) {
    const name = refTarget(schema.$ref, where)
    if (!ctx.components.has(name)) throw new ContractCodegenError(where, `unknown component ${name}`)
    return name
  }

  if (schema.nullable === true) {
    const { nullable: _ignored, ...rest } = schema
    return `Type.Union([${convertSchema(rest, ctx, where, indent)}, Type.Null()])`
  }
  if (schema.nullable === false) {
    const { nullable: _ignored, ...rest } = schema
    return convertSchema(rest, ctx, where, indent)
  }

  for (const combinator of ['allOf', 'anyOf'] as const) {
    const parts = schema[combinator]
    if (parts === undefined) continue
    if (!Array.isArray(parts)) throw new ContractCodegenError(where, `${combinator} must be an array`)
    const options = keptKeywords(schema, [combinator, ...ANNOTATION_KEYWORDS], where)
    delete options[combinator]
    const members = parts.map((p, i) => convertSchema(p, ctx, `${where}.${combinator}[${i}]`, indent))
    const fn = combinator === 'allOf' ? 'Type.Intersect' : 'Type.Union'
    const opts = printOptions(options)
    return `${fn}([${members.join(', ')}]${opts === '' ? '' : `, ${opts}`})`
  }

  const type = schema.type
  if (typeof type !== 'string') throw new ContractCodegenError(where, 'schema without a single "type" (or $ref/allOf/anyOf)')
  const typeKeywords = KEYWORDS_BY_TYPE[type]
  if (typeKeywords === undefined) throw new ContractCodegenError(where, `unsupported type "${type}"`)

  if ('enum' in schema) {
    const values = schema.enum
    if (!Array.isArray(values) || values.length === 0) throw new ContractCodegenError(where, 'enum must be a non-empty array')
    const valueType = type === 'integer' ? 'number' : type
    for (const v of values) {
      const actual: string = typeof v
      if (actual !== valueType) throw new ContractCodegenError(where, `enum value ${String(v)} is not a ${type}`)
    }
    const options = keptKeywords(schema, ['type', 'enum', ...typeKeywords, ...ANNOTATION_KEYWORDS], where)
    numericBounds(options, where)
    ctx.kinds.add(ENUM_KIND)
    return printUnsafe(ENUM_KIND, literalUnion(values), { type, enum: values, ...options })
  }

  switch (type) {
    case 'string':
    case 'number':
    case 'integer':
    case 'boolean': {
      const options = keptKeywords(schema, ['type', ...typeKeywords, ...ANNOTATION_KEYWORDS], where)
      delete options.type
      numericBounds(options, where)
      if (options.format !== undefined) {
        const format = String(options.format)
        if (FORMAT_CHECKS[format] === undefined) throw new ContractCodegenError(where, `format "${format}" has no TypeBox FormatRegistry check in the generator`)
        ctx.formats.add(format)
      }
      const fn = `Type.${type.charAt(0).toUpperCase()}${type.slice(1)}`
      return `${fn}(${printOptions(options)})`
    }
    case 'array': {
      const options = keptKeywords(schema, ['type', 'items', ...typeKeywords, ...ANNOTATION_KEYWORDS], where)
      delete options.type
      delete options.items
      if (schema.items === undefined) throw new ContractCodegenError(where, 'array without items')
      const items = convertSchema(schema.items, ctx, `${where}.items`, indent)
      const opts = printOptions(options)
      return `Type.Array(${items}${opts === '' ? '' : `, ${opts}`})`
    }
    case 'object':
      return convertObject(schema, ctx, where, indent, typeKeywords)
  }
  /* c8 ignore next 2 -- unreachable: KEYWORDS_BY_TYPE lists exactly the cases above */
  throw new ContractCodegenError(where, `unsupported type "${type}"`)
}

function convertObject (schema: JsonRecord, ctx: ConvertContext, where: string, indent: string, typeKeywords: readonly string[]): string {
  const options = keptKeywords(schema, ['type', 'properties', 'required', 'additionalProperties', ...typeKeywords, ...ANNOTATION_KEYWORDS], where)
  delete options.type
  delete options.properties
  delete options.required

  const additional = schema.additionalProperties
  if (isRecord(additional)) {
    options.additionalProperties = { __code: convertSchema(additional, ctx, `${where}.additionalProperties`, indent) }
  } else if (additional !== undefined && typeof additional !== 'boolean') {
    throw new ContractCodegenError(where, 'additionalProperties must be a boolean or a schema')
  }

  const properties = schema.properties === undefined ? undefined : asRecord(schema.properties, `${where}.properties`)
  const required = schema.required ?? []
  if (!Array.isArray(required) || !required.every((r): r is string => typeof r === 'string')) {
    throw new ContractCodegenError(where, 'required must be an array of strings')
  }

  if (properties === undefined) {
    // Type.Object would add `properties: {}`; keep the contract's exact JSON Schema.
    if (required.length > 0) throw new ContractCodegenError(where, 'required without properties')
    if (isRecord(additional)) throw new ContractCodegenError(where, 'schema-valued additionalProperties without properties is not supported')
    if (additional === false) throw new ContractCodegenError(where, 'an object without properties must allow additional properties')
    const staticType = 'Record<string, unknown>'
    ctx.kinds.add(OBJECT_KIND)
    return printUnsafe(OBJECT_KIND, staticType, { type: 'object', ...options })
  }

  for (const r of required) {
    if (!(r in properties)) throw new ContractCodegenError(where, `required property "${r}" is not in properties`)
  }
  const inner = indent + '  '
  const lines = Object.entries(properties).map(([name, prop]) => {
    const code = convertSchema(prop, ctx, `${where}.properties.${name}`, inner)
    return `${inner}${printKey(name)}: ${required.includes(name) ? code : `Type.Optional(${code})`}`
  })
  const body = lines.length === 0 ? '{}' : `{\n${lines.join(',\n')}\n${indent}}`
  const opts = printOptionsWithCode(options)
  return `Type.Object(${body}${opts === '' ? '' : `, ${opts}`})`
}

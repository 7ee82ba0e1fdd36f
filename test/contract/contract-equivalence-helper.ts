// Shared by the contract-equivalence-*.test.ts files: schemas/openapi.yaml as
// text and parsed, the OpenAPI -> JSON Schema normalisation the TypeBox schemas
// in schemas/generated/typebox.ts are compared with, and a strict Ajv.
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { type TSchema } from '@sinclair/typebox'
import { parse } from 'yaml'
import * as generated from '../../schemas/generated/typebox.js'

export type Json = Record<string, unknown>
// ajv-formats is CommonJS with `exports.default`; under NodeNext its default import is the module object.
const addFormats = addFormatsModule.default

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const yamlText = await readFile(join(root, 'schemas/openapi.yaml'), 'utf8')
export const doc = parse(yamlText) as Json

export function isRecord (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function get (value: unknown, ...keys: string[]): unknown {
  let current = value
  for (const key of keys) current = isRecord(current) ? current[key] : undefined
  return current
}

/** Follows a local `#/...` JSON pointer in the document. */
export function resolvePointer (ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`non-local $ref ${ref}`)
  return get(doc, ...ref.slice(2).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')))
}

/**
 * OpenAPI 3.0 schema -> the JSON Schema Fastify should see: `$ref` resolved
 * inline (its siblings ignored, as OpenAPI 3.0 says), `example`, `externalDocs`,
 * `xml` and `x-*` dropped, `nullable: true` -> anyOf [schema, null], and
 * `required` treated as a set (sorted).
 */
export function normalise (node: unknown): unknown {
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
export function plain (schema: unknown): unknown {
  return sortRequired(JSON.parse(JSON.stringify(schema)))
}

function sortRequired (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(sortRequired)
  if (!isRecord(node)) return node
  return Object.fromEntries(Object.entries(node).map(([k, v]) =>
    [k, k === 'required' && Array.isArray(v) ? [...v].sort() : sortRequired(v)]))
}

export const componentSchemas = get(doc, 'components', 'schemas') as Json
export const exported = generated as unknown as Record<string, unknown>

export function componentSchema (name: string): TSchema {
  const schema = exported[name]
  if (!isRecord(schema)) throw new Error(`schemas/generated/typebox.ts has no ${name}`)
  return schema as TSchema
}

export function newAjv (): Ajv {
  const ajv = new Ajv({ strict: true, coerceTypes: false, allErrors: true })
  addFormats(ajv)
  return ajv
}

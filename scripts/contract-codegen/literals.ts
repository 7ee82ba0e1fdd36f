// Prints JSON values as TypeScript literals (neostandard style: single quotes, no semicolons).
import { ContractCodegenError, isRecord, type JsonRecord } from './common.js'

// No trailing commas, and keys unquoted where possible.

export const IDENTIFIER_RE = /^[A-Za-z_$][A-Za-z0-9_$]*$/
const CANONICAL_NUMBER_RE = /^(0|[1-9][0-9]*)$/

export function quoteString (value: string): string {
  const body = JSON.stringify(value).slice(1, -1)
  // JSON.stringify escaped `"` and left `'` alone.
  if (value.includes("'") && !value.includes('"')) return `"${body}"`
  return `'${body.replace(/\\"/g, '"').replace(/'/g, "\\'")}'`
}

export function printKey (key: string): string {
  return IDENTIFIER_RE.test(key) || CANONICAL_NUMBER_RE.test(key) ? key : quoteString(key)
}

/** One-line literal. */
export function printInline (value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return quoteString(value)
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (Array.isArray(value)) return `[${value.map(printInline).join(', ')}]`
  if (isRecord(value)) {
    const entries = Object.entries(value)
    if (entries.length === 0) return '{}'
    return `{ ${entries.map(([k, v]) => `${printKey(k)}: ${printInline(v)}`).join(', ')} }`
  }
  throw new ContractCodegenError('literal', `cannot print a ${typeof value}`)
}

/** Multi-line literal (objects and arrays one entry per line). */
export function printPretty (value: unknown, indent: string): string {
  const inner = indent + '  '
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]'
    return `[\n${value.map((v) => inner + printPretty(v, inner)).join(',\n')}\n${indent}]`
  }
  if (isRecord(value)) {
    const entries = Object.entries(value)
    if (entries.length === 0) return '{}'
    return `{\n${entries.map(([k, v]) => `${inner}${printKey(k)}: ${printPretty(v, inner)}`).join(',\n')}\n${indent}}`
  }
  return printInline(value)
}

export function printOptions (options: JsonRecord): string {
  return Object.keys(options).length === 0 ? '' : printInline(options)
}

/** Like printOptions, but `{ __code }` values are emitted verbatim. */
export function printOptionsWithCode (options: JsonRecord): string {
  const entries = Object.entries(options)
  if (entries.length === 0) return ''
  return `{ ${entries.map(([k, v]) => `${printKey(k)}: ${isRecord(v) && typeof v.__code === 'string' ? v.__code : printInline(v)}`).join(', ')} }`
}

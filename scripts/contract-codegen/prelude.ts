// The runtime code the generated typebox.ts starts with: imports, TypeBox kind, message and format checks.

/**
 * Type.Unsafe schemas get a TypeBox kind registered by the generated module
 * (see printPrelude), so TypeBox's Value.Check and TypeCompiler can check
 * them; the kind is a symbol key, invisible to Ajv and to JSON.
 */
export const ENUM_KIND = 'ContractEnum'
export const OBJECT_KIND = 'ContractObject'

/** TypeRegistry checks for the kinds above (emitted only when used). */
export const KIND_CHECKS: Record<string, string[]> = {
  [ENUM_KIND]: [
    `TypeRegistry.Set('${ENUM_KIND}', (schema: { enum: readonly unknown[] }, value: unknown) => schema.enum.includes(value))`,
  ],
  [OBJECT_KIND]: [
    `TypeRegistry.Set('${OBJECT_KIND}', (_schema: unknown, value: unknown) =>`,
    "  typeof value === 'object' && value !== null && !Array.isArray(value))",
  ],
}

/**
 * TypeBox's message for a failed custom kind is "Expected kind 'ContractEnum'";
 * a client using Value.Errors or TypeCompiler should see the allowed values.
 * TypeBox 0.34 has no per-schema message, only the global error function, so
 * it is wrapped: it answers for this kind alone and hands every other error
 * to the function set before (the host's own, if it set one first).
 */
const ENUM_ERROR_MESSAGE = [
  '// Value.Errors and TypeCompiler name the values a ContractEnum allows; every other',
  '// message still comes from the error function set before (the host\'s, if any).',
  'const previousErrorFunction = GetErrorFunction()',
  'SetErrorFunction((error) => {',
  '  const allowed: unknown = error.schema.enum',
  `  if (error.errorType !== ValueErrorType.Kind || error.schema[Kind] !== '${ENUM_KIND}' || !Array.isArray(allowed)) return previousErrorFunction(error)`,
  '  const values = allowed.map((value: unknown) => typeof value === \'string\' ? "\'" + value + "\'" : String(value))',
  "  return (values.length === 1 ? 'Expected ' : 'Expected one of ') + values.join(', ')",
  '})',
]

/**
 * TypeBox's Value.Check/TypeCompiler fail on a `format` missing from its
 * FormatRegistry; Fastify checks formats with ajv-formats. Each format used
 * by the contract needs a check here (the generator refuses unknown ones).
 * date-time: RFC 3339 shape and ranges, like ajv-formats' "fast" mode.
 */
export const FORMAT_CHECKS: Record<string, string[]> = {
  'date-time': [
    '// A check the host registered first is kept: importing the schemas changes no process-wide behaviour.',
    "if (!FormatRegistry.Has('date-time')) {",
    "  FormatRegistry.Set('date-time', (value) =>",
    '    /^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])[Tt ]([01]\\d|2[0-3]):[0-5]\\d:([0-5]\\d|60)(\\.\\d+)?([Zz]|[+-]([01]\\d|2[0-3]):?[0-5]\\d)$/.test(value))',
    '}',
  ],
}

/** The import line and prelude for the kinds and formats the converted schemas use. */
export function printPrelude (kinds: ReadonlySet<string>, formats: ReadonlySet<string>): string[] {
  const imports = ['Type', 'type Static']
  const prelude: string[] = []
  if (kinds.size > 0) {
    imports.push('Kind', 'TypeRegistry')
    prelude.push(
      '// TypeBox kinds of the Type.Unsafe schemas below, so that Value.Check and',
      '// TypeCompiler check them too (Ajv ignores the symbol-keyed kind).',
      ...[...kinds].sort().flatMap((kind) => KIND_CHECKS[kind] ?? []),
      ''
    )
  }
  const errorImports: string[] = []
  if (kinds.has(ENUM_KIND)) {
    errorImports.push('GetErrorFunction', 'SetErrorFunction', 'ValueErrorType')
    prelude.push(...ENUM_ERROR_MESSAGE, '')
  }
  if (formats.size > 0) {
    imports.push('FormatRegistry')
    prelude.push(
      '// String formats for Value.Check and TypeCompiler (Fastify uses ajv-formats).',
      ...[...formats].sort().flatMap((format) => FORMAT_CHECKS[format] ?? []),
      ''
    )
  }
  imports.sort((a, b) => a.replace('type ', '').localeCompare(b.replace('type ', '')))
  return [
    `import { ${imports.join(', ')} } from '@sinclair/typebox'`,
    ...errorImports.length === 0 ? [] : [`import { ${errorImports.join(', ')} } from '@sinclair/typebox/errors'`],
    '',
    ...prelude,
  ]
}

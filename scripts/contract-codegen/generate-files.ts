// Builds the text of every generated file from the contract's YAML.
import { parse } from 'yaml'
import openapiTS, { astToString, type OpenAPI3 } from 'openapi-typescript'
import { BANNER, ContractCodegenError, OUTPUT_PATHS, YAML_PATH, asRecord, type JsonRecord } from './common.js'
import { IDENTIFIER_RE, printKey, printPretty, quoteString } from './literals.js'
import { collectOperations, dependencyOrder } from './operations.js'
import { printPrelude } from './prelude.js'
import { convertSchema, type ConvertContext } from './schema-to-typebox.js'

function generateTypebox (doc: JsonRecord): string {
  const components = asRecord(asRecord(doc.components ?? {}, 'components').schemas ?? {}, 'components.schemas')
  const ctx: ConvertContext = { components: new Set(Object.keys(components)), kinds: new Set(), formats: new Set() }
  const parts: string[] = ['// ---- components.schemas (dependency order) ----']
  for (const name of dependencyOrder(components)) {
    if (!IDENTIFIER_RE.test(name)) throw new ContractCodegenError(`components.schemas.${name}`, 'name is not a valid identifier')
    parts.push(
      '',
      `export const ${name} = ${convertSchema(components[name], ctx, `components.schemas.${name}`)}`,
      `export type ${name} = Static<typeof ${name}>`
    )
  }

  parts.push('', '// ---- operations (Fastify route options) ----')
  const operations = collectOperations(doc)
  const taken = new Set(Object.keys(components))
  for (const op of operations) {
    const where = `operation ${op.operationId}`
    if (taken.has(op.exportName)) throw new ContractCodegenError(where, `export name ${op.exportName} is already used`)
    taken.add(op.exportName)
    const lines = [
      `export const ${op.exportName} = {`,
      `  method: ${quoteString(op.method)},`,
      `  url: ${quoteString(op.url)},`,
      '  schema: {',
      `    operationId: ${quoteString(op.operationId)},`,
    ]
    for (const slot of ['params', 'querystring', 'headers'] as const) {
      const schema = op[slot]
      if (schema !== undefined) lines.push(`    ${slot}: ${convertSchema(schema, ctx, `${where}.${slot}`, '    ')},`)
    }
    if (op.body !== undefined) lines.push(`    body: ${convertSchema(op.body, ctx, `${where}.body`, '    ')},`)
    if (op.response.length === 0) {
      lines.push('    response: {}')
    } else {
      lines.push('    response: {')
      lines.push(op.response.map(([status, schema]) => `      ${printKey(status)}: ${convertSchema(schema, ctx, `${where}.response.${status}`, '      ')}`).join(',\n'))
      lines.push('    }')
    }
    lines.push('  }', '} as const')
    parts.push('', lines.join('\n'))
  }

  parts.push(
    '',
    '/** Every operation of the contract, keyed by operationId. */',
    'export const operations = {',
    operations.map((op) => `  ${printKey(op.operationId)}: ${op.exportName}`).join(',\n'),
    '} as const',
    '',
    '/** Same record as `operations`: schemas/index.ts exports openapi-typescript\'s `operations` type under that name, so clients get this one as `operationRoutes`. */',
    'export const operationRoutes = operations',
    ''
  )

  return [
    BANNER,
    '/* eslint-disable @typescript-eslint/no-redeclare -- TypeBox convention: each schema constant and its Static type share a name */',
    ...printPrelude(ctx.kinds, ctx.formats),
    ...parts,
  ].join('\n')
}

function templateLiteral (text: string): string {
  return '`' + text.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${') + '`'
}

function generateDocument (yamlText: string, doc: JsonRecord): string {
  return [
    BANNER,
    '',
    '/** The exact text of schemas/openapi.yaml. */',
    `export const openapiYaml: string = ${templateLiteral(yamlText)}`,
    '',
    '/** schemas/openapi.yaml parsed (YAML 1.2 core schema), as a plain object. */',
    `export const openapiDocument: Readonly<Record<string, unknown>> = ${printPretty(doc, '')}`,
    '',
  ].join('\n')
}

async function generateOpenapiTypes (doc: JsonRecord): Promise<string> {
  // openapi-typescript may annotate the object it is given: hand it a copy.
  const ast = await openapiTS(structuredClone(doc) as unknown as OpenAPI3, {
    silent: true,
    // A `default` must not make a request-body property required (isDefault, isInboundEnabled).
    defaultNonNullable: false,
  })
  return `${BANNER}\n\n${astToString(ast)}`
}

/** Parses the contract (YAML 1.2) into a plain object. */
export function parseContract (yamlText: string): JsonRecord {
  return asRecord(parse(yamlText), YAML_PATH)
}

/** Every generated file, keyed by path relative to the repository root. */
export async function generateFiles (yamlText: string): Promise<Record<string, string>> {
  const doc = parseContract(yamlText)
  return {
    [OUTPUT_PATHS.typebox]: generateTypebox(doc),
    [OUTPUT_PATHS.openapiTypes]: await generateOpenapiTypes(doc),
    [OUTPUT_PATHS.document]: generateDocument(yamlText, doc),
  }
}

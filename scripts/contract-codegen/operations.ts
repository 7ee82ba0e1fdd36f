// Reads the contract's structure: component dependency order and each operation's Fastify schema slots.
import { ContractCodegenError, SCHEMA_REF_PREFIX, asRecord, isRecord, type JsonRecord } from './common.js'

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const

function collectRefs (node: unknown, out: Set<string>): void {
  if (Array.isArray(node)) {
    for (const item of node) collectRefs(item, out)
  } else if (isRecord(node)) {
    if (typeof node.$ref === 'string' && node.$ref.startsWith(SCHEMA_REF_PREFIX)) out.add(node.$ref.slice(SCHEMA_REF_PREFIX.length))
    for (const [key, value] of Object.entries(node)) {
      if (key !== 'example' && !key.startsWith('x-')) collectRefs(value, out)
    }
  }
}

/** Component names in dependency order (referenced first), ties kept in document order. */
export function dependencyOrder (schemas: JsonRecord): string[] {
  const names = Object.keys(schemas)
  const done = new Set<string>()
  const visiting = new Set<string>()
  const order: string[] = []
  const visit = (name: string, chain: string[]): void => {
    if (done.has(name)) return
    if (visiting.has(name)) throw new ContractCodegenError(`components.schemas.${name}`, `recursive schema (${[...chain, name].join(' -> ')}) is not supported`)
    if (!(name in schemas)) throw new ContractCodegenError(`components.schemas.${chain.at(-1) ?? name}`, `unknown component ${name}`)
    visiting.add(name)
    const refs = new Set<string>()
    collectRefs(schemas[name], refs)
    for (const ref of refs) visit(ref, [...chain, name])
    visiting.delete(name)
    done.add(name)
    order.push(name)
  }
  for (const name of names) visit(name, [])
  return order
}

export function pascalCase (operationId: string): string {
  return operationId
    .split(/[^A-Za-z0-9]+/)
    .filter((part) => part !== '')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('')
}

/** `/a/{b}/c` -> `/a/:b/c` */
export function fastifyUrl (path: string): string {
  return path.replace(/\{([^}]+)\}/g, ':$1')
}

function resolveComponentRef (doc: JsonRecord, value: unknown, section: string, where: string): JsonRecord {
  const record = asRecord(value, where)
  if (typeof record.$ref !== 'string') return record
  const prefix = `#/components/${section}/`
  if (!record.$ref.startsWith(prefix)) throw new ContractCodegenError(where, `unsupported $ref ${record.$ref}`)
  const name = record.$ref.slice(prefix.length)
  const components = asRecord(asRecord(doc.components, 'components')[section], `components.${section}`)
  return resolveComponentRef(doc, components[name], section, `components.${section}.${name}`)
}

export interface OperationInfo {
  operationId: string
  exportName: string
  method: string
  path: string
  url: string
  /** Schemas per Fastify schema slot, as found in the document (refs not resolved). */
  params?: JsonRecord
  querystring?: JsonRecord
  headers?: JsonRecord
  body?: unknown
  response: Array<[status: string, schema: unknown]>
}

/**
 * The contract's operations mapped onto Fastify's schema slots. Parameter
 * lists become object schemas: `{ type: 'object', properties, required }`, the
 * parameter's `description` copied onto its schema when the schema has none.
 */
export function collectOperations (doc: JsonRecord): OperationInfo[] {
  const paths = asRecord(doc.paths ?? {}, 'paths')
  const out: OperationInfo[] = []
  for (const [path, itemValue] of Object.entries(paths)) {
    const item = asRecord(itemValue, `paths.${path}`)
    const shared = Array.isArray(item.parameters) ? item.parameters : []
    // Document order, so the generated file follows the YAML.
    for (const method of Object.keys(item).filter((key) => (HTTP_METHODS as readonly string[]).includes(key))) {
      const where = `paths.${path}.${method}`
      const op = asRecord(item[method], where)
      if (typeof op.operationId !== 'string') throw new ContractCodegenError(where, 'operationId is required')
      const info: OperationInfo = {
        operationId: op.operationId,
        exportName: pascalCase(op.operationId),
        method: method.toUpperCase(),
        path,
        url: fastifyUrl(path),
        response: [],
      }

      const byKey = new Map<string, JsonRecord>()
      const own = Array.isArray(op.parameters) ? op.parameters : []
      for (const [i, p] of [...shared, ...own].entries()) {
        const param = resolveComponentRef(doc, p, 'parameters', `${where}.parameters[${i}]`)
        byKey.set(`${String(param.in)}:${String(param.name)}`, param)
      }
      const slots: Record<string, { properties: JsonRecord, required: string[] }> = {}
      for (const param of byKey.values()) {
        const slot = param.in === 'path' ? 'params' : param.in === 'query' ? 'querystring' : param.in === 'header' ? 'headers' : undefined
        if (slot === undefined) throw new ContractCodegenError(where, `unsupported parameter location ${String(param.in)}`)
        if (typeof param.name !== 'string' || param.schema === undefined) throw new ContractCodegenError(where, 'parameter needs a name and a schema')
        const s = (slots[slot] ??= { properties: {}, required: [] })
        let schema = asRecord(param.schema, `${where}.parameters.${param.name}`)
        if (typeof param.description === 'string' && schema.description === undefined && schema.$ref === undefined) {
          schema = { ...schema, description: param.description }
        }
        s.properties[slot === 'headers' ? param.name.toLowerCase() : param.name] = schema
        if (param.required === true || param.in === 'path') s.required.push(slot === 'headers' ? param.name.toLowerCase() : param.name)
      }
      for (const [slot, s] of Object.entries(slots)) {
        const schema: JsonRecord = { type: 'object', properties: s.properties }
        if (s.required.length > 0) schema.required = s.required
        if (slot === 'params') info.params = schema
        else if (slot === 'querystring') info.querystring = schema
        else info.headers = schema
      }

      if (op.requestBody !== undefined) {
        const rb = resolveComponentRef(doc, op.requestBody, 'requestBodies', `${where}.requestBody`)
        const content = asRecord(rb.content, `${where}.requestBody.content`)
        const json = content['application/json']
        if (json === undefined) throw new ContractCodegenError(where, 'requestBody without application/json content')
        info.body = asRecord(json, `${where}.requestBody.content`).schema
      }

      const responses = asRecord(op.responses ?? {}, `${where}.responses`)
      for (const [status, value] of Object.entries(responses)) {
        const response = resolveComponentRef(doc, value, 'responses', `${where}.responses.${status}`)
        if (response.content === undefined) continue
        const content = asRecord(response.content, `${where}.responses.${status}.content`)
        const first = Object.values(content)[0]
        if (first === undefined) continue
        const schema = asRecord(first, `${where}.responses.${status}.content`).schema
        if (schema === undefined) continue
        info.response.push([status.toLowerCase(), schema])
      }
      out.push(info)
    }
  }
  return out
}

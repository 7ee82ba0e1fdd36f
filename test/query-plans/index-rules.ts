/**
 * Whether MongoDB would serve a query from an index, by its prefix rules,
 * judged from the command alone (no engine asked: the test engines plan
 * differently from MongoDB). Pure, so the rules are tested on their own.
 *
 * An index serves a filter when its first key is constrained by the filter
 * (equality, `$in`, a range, `$exists: true` or an anchored regex, at the top
 * level or inside `$and`), and by equality whenever the filter fixes any
 * field by equality (equality, sort, range: an index that starts with a range
 * while the filter has an equality would walk every other value of it, e.g.
 * every organization's users); an `$or` is served when every branch is. A sort
 * is served when, after index keys the filter fixes by equality, the next
 * keys are the sort's, in its order and all in one direction (or all reversed).
 * A filter that fixes `_id` by equality or `$in` touches at most that many
 * documents and is served by the `_id` index.
 */

export type IndexKeys = ReadonlyArray<readonly [string, 1 | -1]>

export interface QueryShape {
  collection: string
  command: string
  filter: Record<string, unknown>
  sort?: Record<string, 1 | -1> | undefined
}

export interface Verdict {
  served: boolean
  /** The index that serves it, by its keys (`_id` for the primary key). */
  index?: string
  reason?: string
}

type Constraint = 'equality' | 'range'

function isOperatorObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) &&
    !('_bsontype' in value) && !(value instanceof Date) && !(value instanceof RegExp) &&
    Object.keys(value).length > 0 && Object.keys(value).every((key) => key.startsWith('$'))
}

/** How the filter constrains one field at its top level (and inside `$and`). */
function constraintOf (filter: Record<string, unknown>, field: string): Constraint | undefined {
  const found: Constraint[] = []
  const visit = (part: Record<string, unknown>): void => {
    for (const [key, value] of Object.entries(part)) {
      if (key === '$and' && Array.isArray(value)) for (const branch of value) visit(branch as Record<string, unknown>)
      if (key !== field) continue
      if (!isOperatorObject(value)) {
        found.push('equality')
        continue
      }
      for (const [operator, operand] of Object.entries(value)) {
        if (operator === '$eq' || operator === '$in') found.push('equality')
        else if (['$gt', '$gte', '$lt', '$lte'].includes(operator)) found.push('range')
        else if (operator === '$exists' && operand === true) found.push('range')
        else if (operator === '$regex' && typeof operand === 'string' && operand.startsWith('^')) found.push('range')
      }
    }
  }
  visit(filter)
  if (found.includes('equality')) return 'equality'
  return found.length > 0 ? 'range' : undefined
}

/** The field names the filter constrains, at the top level and inside `$and`. */
function fieldsOf (filter: Record<string, unknown>): string[] {
  return Object.entries(filter).flatMap(([key, value]) =>
    key === '$and' && Array.isArray(value) ? value.flatMap((branch) => fieldsOf(branch as Record<string, unknown>)) : key.startsWith('$') ? [] : [key])
}

function orBranches (filter: Record<string, unknown>): Array<Record<string, unknown>> | undefined {
  const or = filter['$or']
  if (!Array.isArray(or)) return undefined
  // The rest of the filter applies to every branch.
  const rest = Object.fromEntries(Object.entries(filter).filter(([key]) => key !== '$or'))
  return or.map((branch) => ({ ...rest, ...(branch as Record<string, unknown>) }))
}

function name (keys: IndexKeys): string {
  return keys.map(([field, direction]) => `${field}_${direction}`).join('_')
}

function servesSort (keys: IndexKeys, filter: Record<string, unknown>, sort: Record<string, 1 | -1>): boolean {
  const wanted = Object.entries(sort)
  let position = 0
  // Leading keys fixed by equality do not disturb the order.
  while (position < keys.length && constraintOf(filter, keys[position]![0]) === 'equality' && keys[position]![0] !== wanted[0]?.[0]) position++
  const slice = keys.slice(position, position + wanted.length)
  if (slice.length < wanted.length) return false
  const sameWay = slice.every(([field, direction], i) => field === wanted[i]![0] && direction === wanted[i]![1])
  const reversed = slice.every(([field, direction], i) => field === wanted[i]![0] && direction === -wanted[i]![1])
  return sameWay || reversed
}

/** The verdict for one filter (and sort) against the collection's indexes (the `_id` index is always there). */
export function judge (shape: Pick<QueryShape, 'filter' | 'sort'>, indexes: readonly IndexKeys[]): Verdict {
  const { filter, sort } = shape
  const branches = orBranches(filter)
  if (branches !== undefined) {
    if (sort !== undefined && Object.keys(sort).length > 0) return { served: false, reason: 'a sorted $or' }
    const verdicts = branches.map((branch) => judge({ filter: branch }, indexes))
    const unserved = verdicts.find((verdict) => !verdict.served)
    if (unserved !== undefined) return { served: false, reason: `an $or branch is not served: ${unserved.reason ?? ''}` }
    return { served: true, index: verdicts.map((verdict) => verdict.index).join(' | ') }
  }
  const hasSort = sort !== undefined && Object.keys(sort).length > 0
  if (!hasSort && constraintOf(filter, '_id') === 'equality') return { served: true, index: '_id' }
  // The primary key last: MongoDB prefers the index that bounds the scan by the filter's other fields.
  const all: IndexKeys[] = [...indexes, [['_id', 1]]]
  const hasEquality = fieldsOf(filter).some((field) => constraintOf(filter, field) === 'equality')
  for (const keys of all) {
    const first = keys[0]
    if (first === undefined) continue
    const leading = constraintOf(filter, first[0])
    if (hasEquality && leading !== 'equality') continue
    const leads = leading !== undefined
    if (hasSort) {
      // An index that orders the result must also bound the scan: its first key constrained, or the sort on it.
      if (servesSort(keys, filter, sort) && (leads || first[0] === Object.keys(sort)[0])) return { served: true, index: name(keys) }
      continue
    }
    if (leads) return { served: true, index: name(keys) }
  }
  return { served: false, reason: hasSort ? `no index serves the filter ${JSON.stringify(Object.keys(filter))} with the sort ${JSON.stringify(sort)}` : `no index starts with a field of ${JSON.stringify(Object.keys(filter))}` }
}

/** Index keys as a createIndexes command spells them (the driver sends a Map, to keep their order). */
export function keysOf (key: Record<string, unknown> | Map<string, unknown>): IndexKeys {
  const entries = key instanceof Map ? [...key.entries()] : Object.entries(key)
  return entries.map(([field, direction]) => [field, direction === -1 ? -1 : 1] as const)
}

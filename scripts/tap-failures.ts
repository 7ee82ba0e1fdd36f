/**
 * Collects tap's failed assertions from its TAP stream, with the names of the subtests around
 * each one and the first lines of its diagnostic block, so the end of a long CI log says what
 * failed without scrolling back through thousands of `ok` lines.
 */
const DIAGNOSTIC_LINES = 30
// `source` repeats the test's code and `at` the top of `stack`: both are left out.
const LEFT_OUT_KEYS = new Set(['source', 'at'])
const MAX_FAILURES = 20

interface Failure { readonly path: string, readonly diagnostic: string[] }

export class FailureDigest {
  private pending = ''
  private readonly subtests: Array<{ indent: number, name: string }> = []
  private readonly failures: Failure[] = []
  private open: Failure | undefined
  private total = 0

  read (text: string): void {
    const lines = (this.pending + text).split('\n')
    this.pending = lines.pop() ?? ''
    for (const line of lines) this.line(line)
  }

  report (): string {
    if (this.pending !== '') this.line(this.pending)
    this.pending = ''
    if (this.total === 0) return ''
    const shown = this.failures.map((failure) =>
      [`not ok: ${failure.path}`, ...failure.diagnostic.map((line) => `    ${line}`)].join('\n'))
    const hidden = this.total - this.failures.length
    return ['', `=== failed assertions: ${this.total} ===`, ...shown,
      ...(hidden > 0 ? [`... and ${hidden} more`] : [])].join('\n')
  }

  private line (line: string): void {
    const indent = line.length - line.trimStart().length
    const body = line.trimStart()
    if (this.open !== undefined && body === '') return
    if (this.open !== undefined) {
      // A diagnostic block is the indented YAML between `---` and `...` under the `not ok` line.
      if (body === '...' || (indent <= this.openIndent && body !== '---')) this.open = undefined
      else {
        if (body === '---') {
          this.diagnosticIndent = indent
          return
        }
        if (indent === this.diagnosticIndent) this.leftOut = LEFT_OUT_KEYS.has(body.split(':')[0]!)
        if (!this.leftOut && this.open.diagnostic.length < DIAGNOSTIC_LINES) {
          this.open.diagnostic.push(line.slice(Math.min(indent, this.diagnosticIndent)))
        }
        return
      }
    }
    const subtest = /^# Subtest: (.*)$/.exec(body)
    if (subtest !== null) {
      while (this.subtests.length > 0 && this.subtests[this.subtests.length - 1]!.indent >= indent) this.subtests.pop()
      this.subtests.push({ indent, name: subtest[1]! })
      return
    }
    const failed = /^not ok \d+ - (.*?)(?: # time=[\d.]+m?s)?$/.exec(body)
    if (failed === null || /# (TODO|SKIP)/.test(body)) return
    // A failed subtest repeats as `not ok` on its parent's level: count only the leaf.
    const enclosing = this.subtests.filter((subtest) => subtest.indent < indent).map((subtest) => subtest.name)
    const isSubtestResult = this.subtests.some((subtest) => subtest.indent === indent && subtest.name === failed[1])
    if (isSubtestResult) return
    this.total += 1
    if (this.failures.length >= MAX_FAILURES) return
    this.open = { path: [...enclosing, failed[1]!].join(' > '), diagnostic: [] }
    this.openIndent = indent
    this.failures.push(this.open)
  }

  private openIndent = 0
  private diagnosticIndent = 0
  private leftOut = false
}

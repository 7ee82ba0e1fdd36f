import { spawn } from 'node:child_process'

export interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
}

/**
 * Runs a build/fetch tool to completion and returns its stdout. On failure the error carries
 * the tool's last output lines, since that is what explains a failed build.
 */
export async function runCommand (command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? process.cwd(),
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8') })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
    child.once('error', (error) => { reject(new Error(`${command} could not run: ${error.message}`)) })
    child.once('close', (code, signal) => {
      if (code === 0) { resolve(stdout); return }
      const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-8).join('\n')
      reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `code ${code ?? '?'}`}):\n${tail}`))
    })
  })
}

// The only place the program starts another program. Everything it may run is named in
// NODE_COMMANDS, so the image can be checked to contain each one (test/image/): a command
// missing from the image would only show on a node, as a failed start.

import { spawn } from 'node:child_process';

/** Every external command the program can run: the iptables tools of both backends, and ip for the endpoint's addresses. */
export const NODE_COMMANDS = ['iptables', 'iptables-legacy', 'iptables-nft', 'iptables-legacy-save', 'iptables-nft-save', 'ip'] as const;
export type NodeCommand = (typeof NODE_COMMANDS)[number];

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How the program runs its commands; tests substitute one that runs them in a node namespace. */
export type CommandRunner = (command: NodeCommand, args: string[]) => Promise<CommandResult>;

export class CommandError extends Error {
  override name = 'CommandError';
}

/** Runs a program to its exit; a non-zero exit is a result, only a program that cannot start rejects. */
export function runProgram(command: string, args: string[]): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(new CommandError(error.code === 'ENOENT' ? `${command} not found on PATH: the image must contain it` : `cannot run ${command}: ${error.message}`));
    });
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })); // null: killed by a signal
  });
}

export const runCommand: CommandRunner = runProgram;

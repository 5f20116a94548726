/** `--device cpu|cuda|auto` of the commands: resolved once, the reason of an 'auto' choice printed once. */
import { type DeviceRequest, resolveDevice } from '../models/device.js';
import type { Device } from '../tensor/tensor.js';
import { UsageError } from './args.js';

const said = new Set<string>();

/** The device of `request` (default cpu); 'auto' tells stderr what it chose and why (once per process). */
export function cliDevice(request: unknown, quiet = false): Device {
  if (request === undefined || request === 'cpu') return 'cpu';
  if (request !== 'cuda' && request !== 'auto') throw new UsageError(`--device: expected cpu | cuda | auto, got ${JSON.stringify(request)}`);
  const r = resolveDevice(request as DeviceRequest);
  const line = `device: ${r.device} (${r.reason})`;
  if (request === 'auto' && !quiet && !said.has(line)) {
    said.add(line);
    process.stderr.write(`${line}\n`);
  }
  return r.device;
}

/** A run configuration with its device resolved (so each run of a comparison does not resolve it again). */
export function withDevice<T extends { device?: DeviceRequest }>(config: T, quiet = false): T {
  return config.device === undefined ? config : { ...config, device: cliDevice(config.device, quiet) };
}

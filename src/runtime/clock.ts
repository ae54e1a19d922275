// The keeper's two clocks, injected so that tests can drive time: wall-clock milliseconds
// for what people read (and what survives a restart in the state file), and a monotonic
// clock for schedules and durations, which no NTP step can move.

export interface Clock {
  /** Wall-clock ms since the epoch. */
  now(): number;
  /** Monotonic ms, for intervals only. */
  monotonic(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

// quartz.wasm: the core shared by every home. Each feature file exports its own prefixed names.
export { alloc, free } from './memory';

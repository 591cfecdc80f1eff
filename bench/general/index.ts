// `npm run bench -- general`: the runner's entry for bench/http/general.ts (see its header).
import '../http/general.js';

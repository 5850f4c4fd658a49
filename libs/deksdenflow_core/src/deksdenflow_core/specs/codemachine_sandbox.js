'use strict';
// Evaluates a CodeMachine package's JavaScript (workflow templates, config/*.js) for deksdenflow's import,
// as data only. Started by deksdenflow_core.specs.sandbox with Node's permission model (it may read this
// file and nothing else: no writes, no child process, no worker), no environment, a memory cap and a
// timeout. The package's files come on stdin as JSON ({files: {path: text}, entries: [path]}); the answer is
// JSON lines on stdout: {evaluating: path} before each entry, then {file, value} or {file, line, error}.
//
// The package's code runs in a vm context that holds no object of this realm: its globals are defined by
// source run inside it, it cannot generate code from strings (neither can this realm: the process runs with
// --disallow-code-generation-from-strings), `require` gives only `path` and the package's own files, and
// the stand-ins of CodeMachine's template globals (resolveStep, resolveModule, resolveFolder, separator,
// controller) only record what they were called with. Each entry is one timed call, its microtasks included.

const vm = require('node:vm');

const ROOT = '/codemachine-package';
const TIMEOUT_MS = Number(process.argv[2] || 2000);

function readStdin() {
  const chunks = [];
  return new Promise((resolve, reject) => {
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

// Runs inside the context, before any package code: it takes the compiled modules and the status object
// from the globals, removes them, and keeps every intrinsic it uses, so package code cannot change them.
const BOOTSTRAP = String.raw`(function () {
  'use strict';
  const ROOT = ${JSON.stringify(ROOT)};
  const wrappers = globalThis.__wrappers, texts = globalThis.__texts, status = globalThis.__status;
  delete globalThis.__wrappers; delete globalThis.__texts; delete globalThis.__status;
  const parse = JSON.parse, stringify = JSON.stringify, keys = Object.keys, freeze = Object.freeze;
  const define = Object.defineProperty, ErrorC = Error;

  function normalize(p) {
    const absolute = p.charAt(0) === '/';
    const parts = p.split('/');
    const out = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part === '' || part === '.') continue;
      if (part === '..') { if (out.length && out[out.length - 1] !== '..') out.length -= 1; else if (!absolute) out[out.length] = '..'; continue; }
      out[out.length] = part;
    }
    const joined = out.join('/');
    return absolute ? '/' + joined : (joined || '.');
  }
  function text(value, what) {
    if (typeof value !== 'string') throw new TypeError('path.' + what + ': the path must be a string');
    return value;
  }
  const path = {
    sep: '/',
    delimiter: ':',
    normalize: (p) => normalize(text(p, 'normalize')),
    join: function () { const a = []; for (let i = 0; i < arguments.length; i++) a[a.length] = text(arguments[i], 'join'); return normalize(a.join('/') || '.'); },
    resolve: function () {
      let out = '';
      for (let i = arguments.length - 1; i >= 0 && out.charAt(0) !== '/'; i--) { const s = text(arguments[i], 'resolve'); if (s) out = out ? s + '/' + out : s; }
      return normalize(out.charAt(0) === '/' ? out : ROOT + '/' + out);
    },
    isAbsolute: (p) => text(p, 'isAbsolute').charAt(0) === '/',
    dirname: (p) => { const n = normalize(text(p, 'dirname')); const i = n.lastIndexOf('/'); return i < 0 ? '.' : i === 0 ? '/' : n.slice(0, i); },
    basename: (p, ext) => { const n = normalize(text(p, 'basename')); const b = n.slice(n.lastIndexOf('/') + 1); return ext && b.endsWith(ext) ? b.slice(0, b.length - ext.length) : b; },
    extname: (p) => { const b = normalize(text(p, 'extname')); const base = b.slice(b.lastIndexOf('/') + 1); const i = base.lastIndexOf('.'); return i <= 0 ? '' : base.slice(i); },
    relative: (from, to) => {
      const f = normalize(from.charAt(0) === '/' ? from : ROOT + '/' + from).split('/').filter(Boolean);
      const t = normalize(to.charAt(0) === '/' ? to : ROOT + '/' + to).split('/').filter(Boolean);
      let i = 0; while (i < f.length && i < t.length && f[i] === t[i]) i++;
      const up = []; for (let j = i; j < f.length; j++) up[up.length] = '..';
      return up.concat(t.slice(i)).join('/');
    },
  };
  path.posix = path;
  freeze(path);

  const cache = Object.create(null);
  function load(file) {
    if (cache[file]) return cache[file].exports;
    const module = { exports: {} };
    cache[file] = module;
    if (file.endsWith('.json')) { module.exports = parse(texts[file]); return module.exports; }
    const outer = status.file;
    status.file = file;
    const dir = file.lastIndexOf('/') > 0 ? file.slice(0, file.lastIndexOf('/')) : '';
    const here = ROOT + '/' + file;
    wrappers[file].call(module.exports, module.exports, requireFrom(dir), module, here, ROOT + (dir ? '/' + dir : ''));
    status.file = outer;
    return module.exports;
  }
  function requireFrom(dir) {
    return function require(name) {
      if (name === 'path' || name === 'node:path' || name === 'path/posix' || name === 'node:path/posix') return path;
      name = String(name);
      if (name.charAt(0) === '.' || name.charAt(0) === '/') {
        const base = name.charAt(0) === '/' ? name : ROOT + '/' + (dir ? dir + '/' : '') + name;
        const target = normalize(base);
        if (target.indexOf(ROOT + '/') === 0) {
          const rel = target.slice(ROOT.length + 1);
          const candidates = [rel, rel + '.js', rel + '.cjs', rel + '.json', rel + '/index.js'];
          for (let i = 0; i < candidates.length; i++) {
            if (wrappers[candidates[i]] || texts[candidates[i]] !== undefined) return load(candidates[i]);
          }
          throw new ErrorC("require('" + name + "'): there is no " + rel + ' in the package');
        }
      }
      throw new ErrorC("require('" + name + "') is not allowed: a CodeMachine package may require only 'path' and its own files");
    };
  }

  function callerLine() {
    const stack = String(new ErrorC().stack || '').split('\n');
    for (let i = 0; i < stack.length; i++) {
      const m = /\((.*?):(\d+):\d+\)$|at (.*?):(\d+):\d+$/.exec(stack[i]);
      const file = m && (m[1] || m[3]);
      if (file && wrappers[file]) return parse(m[2] || m[4]);
    }
    return 0;
  }
  function record(kind) {
    return function (id, overrides) {
      return { __codemachine: kind, id: id, overrides: overrides === undefined ? {} : overrides, line: callerLine() };
    };
  }
  const globals = {
    resolveStep: record('step'),
    resolveModule: record('module'),
    resolveFolder: record('folder'),
    controller: record('controller'),
    separator: function (label) { return { __codemachine: 'separator', id: String(label), overrides: {}, line: callerLine() }; },
  };
  const names = keys(globals);
  for (let i = 0; i < names.length; i++) define(globalThis, names[i], { value: globals[names[i]], writable: false, configurable: false });

  // One entry per timed call (the host names the entry in status.entry), so a timeout names its file.
  define(globalThis, '__run', {
    value: function run() {
      const file = status.entry;
      try {
        const exported = load(file);
        const value = exported && exported.__esModule && exported.default !== undefined ? exported.default : exported;
        return stringify({ file: file, value: value === undefined ? null : value });
      } catch (e) {
        let message = 'threw a value that is not an Error', line = 0;
        try { message = String(e && e.message !== undefined ? e.message : e); } catch (_) { /* keep the default */ }
        try { const m = new RegExp((status.file || file).replace(/[.*+?^$()|[\]\\{}]/g, '\\$&') + ':(\\d+)').exec(String(e && e.stack)); if (m) line = parse(m[1]); } catch (_) { /* no line */ }
        const where = status.file || file;
        status.file = '';
        return stringify({ file: where, error: message, line: line });
      }
    },
    writable: false,
    configurable: false,
  });
})()`;

// Turns `export default <expr>` (today's workflow templates are ES modules with a default export and no
// import) into CommonJS on the same line, so line numbers stay the package's.
function commonjs(source) {
  return source.replace(/^([ \t]*)export\s+default\s+/m, '$1module.exports = ');
}

function wrapperSource(source) {
  return '(function (exports, require, module, __filename, __dirname) { ' + commonjs(source) + '\n})';
}

function lineOf(error, file) {
  const m = new RegExp(file.replace(/[.*+?^$()|[\]\\{}]/g, '\\$&') + ':(\\d+)').exec(String(error && error.stack));
  return m ? Number(m[1]) : 0;
}

async function main() {
  const input = JSON.parse(await readStdin());
  const context = vm.createContext(Object.create(null), {
    codeGeneration: { strings: false, wasm: false },
    microtaskMode: 'afterEvaluate',
  });
  const inner = (source) => vm.runInContext(source, context);
  const wrappers = inner('Object.create(null)');
  const texts = inner('Object.create(null)');
  const status = inner('Object.create(null)');
  status.file = '';
  const errors = [];
  for (const [file, text] of Object.entries(input.files)) {
    if (/\.(c?js)$/.test(file)) {
      try {
        wrappers[file] = new vm.Script(wrapperSource(text), { filename: file }).runInContext(context);
      } catch (e) {
        errors.push({ file, line: lineOf(e, file), error: `${e.name}: ${e.message}` });
      }
    } else if (/\.json$/.test(file)) {
      texts[file] = text;
    }
  }
  context.__wrappers = wrappers;
  context.__texts = texts;
  context.__status = status;
  const say = (line) => process.stdout.write(JSON.stringify(line) + '\n');
  for (const error of errors) say(error);
  new vm.Script(BOOTSTRAP, { filename: 'codemachine-sandbox-bootstrap' }).runInContext(context);
  const call = new vm.Script('__run()', { filename: 'codemachine-sandbox-run' });
  // A promise of the package's that failed (a dynamic import, which has no loader here) changes nothing
  // that is read: it must not end the process.
  process.on('unhandledRejection', () => {});
  for (const file of input.entries) {
    if (!wrappers[file]) continue;
    status.entry = file;
    say({ evaluating: file });
    let answer;
    try {
      answer = call.runInContext(context, { timeout: TIMEOUT_MS });
    } catch (e) {
      const timedOut = e && e.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT';
      const where = typeof status.file === 'string' && status.file ? status.file : file;
      say({
        file: where,
        line: 0,
        error: timedOut ? `did not finish within ${TIMEOUT_MS} ms (an endless loop?): stopped` : 'could not be evaluated',
      });
      return;
    }
    process.stdout.write((typeof answer === 'string' ? answer : JSON.stringify({ file, error: 'gave no value', line: 0 })) + '\n');
  }
}

main().catch((e) => {
  process.stderr.write(`codemachine sandbox: ${e && e.message}\n`);
  process.exit(3);
});

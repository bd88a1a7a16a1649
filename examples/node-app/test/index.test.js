'use strict';

// The project's tests, with node's own assert (no test framework to install).
const assert = require('assert');
const greetings = require('../index.js');

const tests = {
  'greets each name on its own line': () => {
    assert.strictEqual(greetings(['Ada', 'Grace']), 'tiny:hello Ada\ntiny:hello Grace');
  },
  'refuses no names': () => {
    assert.throws(() => greetings([]), /no names to greet/);
  },
};

let failed = 0;
for (const [name, test] of Object.entries(tests)) {
  try {
    test();
    console.log('ok - ' + name);
  } catch (error) {
    failed += 1;
    console.log('not ok - ' + name + '\n' + error.stack);
  }
}
console.log(Object.keys(tests).length - failed + ' of ' + Object.keys(tests).length + ' tests passed');
process.exit(failed === 0 ? 0 : 1);

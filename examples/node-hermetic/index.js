'use strict';

const greeting = require('@sealroom-fixtures/greeting');

// One greeting per name, one a line.
module.exports = function greetings(names) {
  if (names.length === 0) {
    throw new Error('no names to greet');
  }
  return names.map((name) => greeting(name)).join('\n');
};

#!/usr/bin/env node
'use strict';

const greetings = require('./index.js');

try {
  console.log(greetings(process.argv.slice(2)));
} catch (error) {
  console.error('node-hermetic: ' + error.message + ' (usage: node-hermetic NAME...)');
  process.exit(2);
}

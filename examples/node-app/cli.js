#!/usr/bin/env node
'use strict';

const greetings = require('./index.js');

try {
  console.log(greetings(process.argv.slice(2)));
} catch (error) {
  console.error('node-app: ' + error.message + ' (usage: node-app NAME...)');
  process.exit(2);
}

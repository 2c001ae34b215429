// Runs the exported Step Functions definition (deploy/aws/cbpipe.asl.json)
// with aws-local-stepfunctions, an independent implementation of the States
// Language, and prints one JSON document describing the execution:
//
//   node execute.mjs --definition deploy/aws/cbpipe.asl.json \
//     --scenario clean [--moto http://127.0.0.1:PORT] \
//     [--substitutions '{"DeadLetterQueueUrl": "...", "AlertTopicArn": "..."}'] \
//     [--retry-ms 20] [--invoke URL --input JSON --name NAME]
//   -> {"status": "SUCCEEDED" | "FAILED", "output": ..., "error": {Error,
//       Cause}, "calls": {state: n}, "retry_gaps_ms": {state: [ms, ...]},
//       "integrations": [{state, parameters}]}
//
// ${Name} placeholders are replaced from --substitutions as CloudFormation's
// DefinitionSubstitutions would (Lambda ARNs get example values: every Task
// calling a Lambda is overridden). Task states run canned local handlers
// (below) per scenario: each returns what the cbpipe step would for a small
// input with two batches and four card companies, or fails with the
// errorType the cbpipe Lambda runtime reports (Cbpipe.Transient,
// Cbpipe.InvalidInput, Cbpipe.Permanent). The SQS SendMessage and SNS
// Publish integrations of the failure path go to moto (--moto) with the
// parameters the state machine built. Retry waits are shortened to
// --retry-ms (default 20), never skipped.
//
// Scenario "lambda" (the end-to-end run against the packaged Lambda,
// tests/e2e/stepfunctions_lambda_test.cc): every Task calling a Lambda
// POSTs its input to `--invoke URL`/<state name> (the state's name is the
// function's _HANDLER), where the test hands it to the packaged function
// through a Lambda runtime API server. The answer is the function's
// response (HTTP 200) or its error {errorType, errorMessage} (any other
// status), thrown as the States error `errorType` so that Retry and Catch
// match it as on AWS. `--input JSON` and `--name NAME` give the execution's
// input and name (defaults: a canned run header, "r1"). retry_gaps_ms then
// holds, per state, the wait between a failed call and the next call with
// the same input.
//
// Exit status: 0 when the execution ran (whatever its status), 2 on usage
// or setup errors.

// aws-local-stepfunctions 3 wants Node 22's Promise.withResolvers; Debian's
// Node 20 lacks it.
Promise.withResolvers ??= function withResolvers() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

const { StateMachine } = await import('aws-local-stepfunctions');
const { readFileSync } = await import('node:fs');

function usage(message) {
  process.stderr.write(`execute.mjs: ${message}\n`);
  process.exit(2);
}

const args = { scenario: 'clean', retryMs: 20, substitutions: {},
               name: 'r1' };
for (let i = 2; i < process.argv.length; i += 2) {
  const [flag, value] = [process.argv[i], process.argv[i + 1]];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === '--definition') args.definition = value;
  else if (flag === '--scenario') args.scenario = value;
  else if (flag === '--moto') args.moto = value;
  else if (flag === '--retry-ms') args.retryMs = Number(value);
  else if (flag === '--substitutions') args.substitutions = JSON.parse(value);
  else if (flag === '--invoke') args.invoke = value;
  else if (flag === '--input') args.input = JSON.parse(value);
  else if (flag === '--name') args.name = value;
  else usage(`unknown flag ${flag}`);
}
if (!args.definition) usage('--definition is required');

const DESTINATIONS = ['visa', 'mastercard', 'amex', 'discover'];
const SCENARIOS = {
  // Every batch verified and delivered to the four card companies.
  clean: {},
  // amex fails twice (Cbpipe.Transient) per batch, then accepts: Retry.
  down_then_up: { failFirst: { amex: 2 } },
  // amex never answers: past its retries, settle fails the run, Catch ->
  // record_failure -> dead letter + alert.
  down: { failFirst: { amex: Infinity } },
  // The input cannot be read: scan's Cbpipe.InvalidInput -> reject_input.
  invalid: { scanError: 'Cbpipe.InvalidInput' },
  // Batch b2 no longer matches its manifest (DATA_LOSS): the Map tolerates
  // it, b1 is delivered, settle fails the run.
  verify_fails: { verifyError: { b2: 'Cbpipe.Permanent' } },
  // The packaged functions, through the test's invoke endpoint (--invoke).
  lambda: { invoke: true },
};
const scenario = SCENARIOS[args.scenario];
if (!scenario) usage(`unknown scenario ${args.scenario}`);
if (scenario.invoke && !args.invoke) usage('scenario lambda needs --invoke');

let text = readFileSync(args.definition, 'utf8');
text = text.replace(/\$\{([A-Za-z0-9]+)\}/g, (whole, name) => {
  if (name in args.substitutions) return args.substitutions[name];
  if (name.endsWith('FunctionArn')) {
    return `arn:aws:lambda:us-east-1:123456789012:function:cbpipe-${name}`;
  }
  usage(`no substitution for ${whole}`);
});
const definition = JSON.parse(text);

const calls = {};
const lastCall = {};
const retryGaps = {};
const integrations = [];

function stepError(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

function counted(state, fn) {
  return async (input) => {
    calls[state] = (calls[state] ?? 0) + 1;
    return fn(input);
  };
}

const deliverAttempts = {};

function cannedHandlers() {
  return {
    scan: async (input) => {
      if (scenario.scanError) {
        throw stepError(scenario.scanError, 'INVALID_ARGUMENT: not UTF-8');
      }
      const batch = (id) => ({
        id,
        manifest: `batches/${id}/manifest.json`,
        files: DESTINATIONS.map((d) => `batches/${id}/${d}.csv`),
      });
      return { ...input, records: 8, accepted: 8, rejected: 0,
               batches: [batch('b1'), batch('b2')] };
    },
    verify: async (input) => {
      const id = input.batch.id;
      if (scenario.verifyError?.[id]) {
        throw stepError(scenario.verifyError[id],
                        `DATA_LOSS: batch ${id} does not match its manifest`);
      }
      return {
        id,
        manifest: input.batch.manifest,
        deliveries: DESTINATIONS.map((destination) => ({
          run_id: input.run_id, trace_id: input.trace_id,
          now_ms: input.now_ms,
          batch: { id, manifest: input.batch.manifest }, destination })),
      };
    },
    deliver: async (input) => {
      const key = `${input.batch.id}/${input.destination}`;
      const now = Date.now();
      if (lastCall[key] !== undefined) {
        (retryGaps.deliver ??= []).push(now - lastCall[key]);
      }
      lastCall[key] = now;
      const n = (deliverAttempts[key] = (deliverAttempts[key] ?? 0) + 1);
      if (n <= (scenario.failFirst?.[input.destination] ?? 0)) {
        throw stepError('Cbpipe.Transient',
                        `UNAVAILABLE: ${input.destination}: connection refused`);
      }
      return { id: input.batch.id, destination: input.destination,
               files: [{ destination: input.destination,
                         name: `${input.batch.id}-${input.destination}.csv`,
                         status: 'delivered', attempts: n }] };
    },
    notify: async (input) => input,
    settle: async (input) => {
      const failed = [];
      for (const batch of input.deliveries) {
        if (batch.error) failed.push(batch.batch?.id ?? '?');
        for (const d of batch.deliveries ?? []) {
          if (d.error) failed.push(`${batch.id}/${d.destination}`);
        }
      }
      if (failed.length) {
        throw stepError('Cbpipe.Transient',
                        `ABORTED: not delivered: ${failed.join(', ')}`);
      }
      return input;
    },
    reject_input: async (input) => ({ ...input,
                                      quarantine: `quarantine/${input.run_id}` }),
    record_failure: async (input) => input,
  };
}

// Every Task state calling a Lambda (anything but an arn:aws:states:::
// integration), in the ItemProcessors too: its input POSTed to the test's
// invoke endpoint.
function invokedHandlers() {
  const handlers = {};
  const failedAt = {};
  (function collect(states) {
    for (const [name, state] of Object.entries(states)) {
      if (state.ItemProcessor) collect(state.ItemProcessor.States);
      if (state.Type !== 'Task' ||
          state.Resource.startsWith('arn:aws:states:::')) continue;
      handlers[name] = async (input) => {
        const body = JSON.stringify(input);
        const key = `${name} ${body}`;
        if (failedAt[key] !== undefined) {
          (retryGaps[name] ??= []).push(Date.now() - failedAt[key]);
          delete failedAt[key];
        }
        let response;
        try {
          response = await fetch(`${args.invoke}/${name}`, {
            method: 'POST', headers: { 'Content-Type': 'application/json' },
            body });
        } catch (e) {
          failedAt[key] = Date.now();
          throw stepError('Lambda.ServiceException', `invoke ${name}: ${e}`);
        }
        const answer = await response.text();
        if (response.ok) return JSON.parse(answer);
        failedAt[key] = Date.now();
        let error;
        try {
          error = JSON.parse(answer);
        } catch {
          error = { errorType: 'Lambda.ServiceException', errorMessage: answer };
        }
        throw stepError(error.errorType ?? 'Lambda.Unknown',
                        error.errorMessage ?? answer);
      };
    }
  })(definition.States);
  return handlers;
}

// The failure path's integrations, sent to moto as Step Functions would.
async function awsCall(service, headers, body) {
  const response = await fetch(args.moto + '/', {
    method: 'POST',
    headers: {
      ...headers,
      Authorization: 'AWS4-HMAC-SHA256 Credential=testing/20260101/' +
          `us-east-1/${service}/aws4_request, SignedHeaders=host, ` +
          'Signature=0',
    },
    body,
  });
  const answer = await response.text();
  if (!response.ok) {
    throw stepError('States.TaskFailed',
                    `${service} ${response.status}: ${answer.slice(0, 300)}`);
  }
  return answer;
}

function integrationHandlers() {
  const handlers = {};
  for (const [name, state] of Object.entries(definition.States)) {
    if (state.Type !== 'Task') continue;
    if (state.Resource === 'arn:aws:states:::sqs:sendMessage') {
      handlers[name] = async (params) => {
        integrations.push({ state: name, parameters: params });
        if (!args.moto) return {};
        const answer = await awsCall('sqs', {
          'Content-Type': 'application/x-amz-json-1.0',
          'X-Amz-Target': 'AmazonSQS.SendMessage',
        }, JSON.stringify({ QueueUrl: params.QueueUrl,
                            MessageBody: JSON.stringify(params.MessageBody) }));
        return JSON.parse(answer);
      };
    } else if (state.Resource === 'arn:aws:states:::sns:publish') {
      handlers[name] = async (params) => {
        integrations.push({ state: name, parameters: params });
        if (!args.moto) return {};
        const form = new URLSearchParams({
          Action: 'Publish', Version: '2010-03-31', TopicArn: params.TopicArn,
          Subject: params.Subject, Message: JSON.stringify(params.Message) });
        await awsCall('sns', {
          'Content-Type': 'application/x-www-form-urlencoded' }, form.toString());
        return {};
      };
    }
  }
  return handlers;
}

const handlers = {};
for (const [state, fn] of Object.entries(
    { ...(scenario.invoke ? invokedHandlers() : cannedHandlers()),
      ...integrationHandlers() })) {
  handlers[state] = counted(state, fn);
}

// Every state with Retry rules waits --retry-ms before each retry.
const retryIntervalOverrides = {};
(function collect(states) {
  for (const [name, state] of Object.entries(states)) {
    if (state.Retry) retryIntervalOverrides[name] = args.retryMs;
    if (state.ItemProcessor) collect(state.ItemProcessor.States);
  }
})(definition.States);

const input = args.input ?? {
  run_id: 'r1', trace_id: 'trace-1', now_ms: 1767225600000,
  input_key: 'inputs/chargebacks.csv', input_name: 'chargebacks.csv' };
const machine = new StateMachine(definition, { validationOptions: {} });
const execution = machine.run(input, {
  overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides },
  context: { Execution: {
    Id: `arn:aws:states:us-east-1:123456789012:execution:cbpipe:${args.name}`,
    Input: input, Name: args.name, StartTime: new Date(0).toISOString() } },
});
const report = { scenario: args.scenario, calls, retry_gaps_ms: retryGaps,
                 integrations };
try {
  report.output = await execution.result;
  report.status = 'SUCCEEDED';
} catch (e) {
  report.status = 'FAILED';
  const cause = e.cause ?? e;
  report.error = { Error: cause.name, Cause: cause.message };
}
process.stdout.write(JSON.stringify(report) + '\n');

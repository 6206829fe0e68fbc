ALTER TYPE spendcap.batch_result DROP ATTRIBUTE remaining;
ALTER TYPE spendcap.reserve_outcome DROP ATTRIBUTE remaining;
ALTER TYPE spendcap.usage_outcome DROP ATTRIBUTE remaining;

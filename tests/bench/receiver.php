<?php
// receiver.php: the PHP-FPM script that tests/bench/ack compares
// podio-webhook with: what a user writes instead to receive Podio
// webhooks.  It merges the query and the body, checks the secret (403
// otherwise), appends the event as a JSON line to a file, flushed with
// fsync before it answers, and answers 200 "ok".
//
// The web server passes the secret and the file in its FastCGI
// parameters WEBHOOK_SECRET and WEBHOOK_EVENTS.

$params = array_merge($_GET, $_POST);
$secret = $_SERVER['WEBHOOK_SECRET'] ?? '';
$given = $params['secret'] ?? null;
if ($secret === '' || !is_string($given) || !hash_equals($secret, $given)) {
    http_response_code(403);
    echo "forbidden\n";
    exit;
}
unset($params['secret']);
$line = json_encode($params) . "\n";
$f = fopen($_SERVER['WEBHOOK_EVENTS'], 'a');
$ok = $f !== false && flock($f, LOCK_EX);
$ok = $ok && fwrite($f, $line) === strlen($line);
$ok = $ok && fflush($f) && fsync($f);
if ($f !== false) {
    fclose($f);           // releases the lock
}
if (!$ok) {
    http_response_code(500);
    echo "cannot store the event\n";
    exit;
}
echo "ok\n";

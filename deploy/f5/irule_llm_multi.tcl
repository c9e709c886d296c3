# irule_llm (multi) -- like irule_llm.tcl, but works with SEVERAL active scheduler API replicas.
#
# The original iRule required exactly one active member in the scheduler pool, so a second scheduler replica
# switched scheduling off. This variant picks one active scheduler member at random for every call (random
# rather than a shared rotation counter: no extra table write per request, and the load still spreads
# evenly). If connecting, sending or receiving fails (no complete HTTP response), it tries the next active
# member once; if that fails too, the request goes to the default LLM pool with BIG-IP's own load balancing.
# An answered request (none, fallback, a 503 from a replica that is not ready) is not retried: the scheduler
# pool's /health monitor takes unready replicas out of rotation within one monitor interval.
#
# Everything else -- variables, defaults, request bytes, parsing, caching, logging -- is identical to
# irule_llm.tcl (see its header for the differences from the original and for the opt-in prefix hints).
# Save THIS file as /Common/irule_llm (instead of irule_llm.tcl, not next to it): it calls its own procs as
# /Common/irule_llm::<proc>. Install guide: deploy/f5/README.md.

when HTTP_REQUEST {
    # ---- edit per deployment (names and defaults of the original) ------------------------------------
    set debug 0                                 ;# 1: log local0.debug traces
    set timing 0                                ;# 1: log the scheduler round trip at local0.info
    set partition "Common"                      ;# sent as "partition" in the JSON
    set pool_tblb_sched "pool_tblb_sched"       ;# pool of the scheduler API replicas (one or more active)
    set pool_backend_llm "Pool_vllm"            ;# LLM pool (also its name in the JSON)
    set pool_fallback_llm "Pool_fallback_vllm"  ;# used when the scheduler answers "fallback"
    set sched_uri "/scheduler/select"
    set side_timeout_ms "500"                   ;# budget for each of connect, send and recv
    set call_interval_ms "1"                    ;# minimum gap between two scheduler calls per virtual server
    set prefix_hints 0                          ;# 1: send the body's prefix fingerprints and model (opt-in)
    set prefix_body_cap "32768"                 ;# bytes of the body read for them (at most 32768 are used)
    # ------------------------------------------------------------------------------------------------------

    set llm_collecting 0
    if { $prefix_hints } {
        set collect_len [call /Common/irule_llm::collect_length [HTTP::header Content-Length] [HTTP::header exists Transfer-Encoding] [HTTP::header exists Expect] $prefix_body_cap]
        if { $collect_len > 0 && [catch { HTTP::collect $collect_len }] == 0 } {
            # The decision waits for the first bytes of the body: HTTP_REQUEST_DATA makes it.
            set llm_collecting 1
            return
        }
        if { $debug } { log local0.debug "llm: no prefix hint for this request (no fixed-length body to read)" }
    }
    call /Common/irule_llm::schedule "" "" $debug $timing $partition $pool_tblb_sched $pool_backend_llm $pool_fallback_llm $sched_uri $side_timeout_ms $call_interval_ms
}

when HTTP_REQUEST_DATA {
    # Fires for our HTTP::collect only (llm_collecting), never for a collect of another iRule.
    if { [info exists llm_collecting] && $llm_collecting } {
        set llm_collecting 0
        set body [HTTP::payload]
        set prefix [call /Common/irule_llm::prefix_fingerprints $body $prefix_body_cap]
        set model [call /Common/irule_llm::body_model $body]
        unset body
        call /Common/irule_llm::schedule $prefix $model $debug $timing $partition $pool_tblb_sched $pool_backend_llm $pool_fallback_llm $sched_uri $side_timeout_ms $call_interval_ms
        HTTP::release
    }
}

# One scheduling decision: ask the scheduler (or reuse the virtual server's last answer) and apply it.
# `prefix` is the JSON array body of fingerprints ("" = none) and `model` the body's model ("" = none); a
# request with a prefix is always asked, because another prompt's answer says nothing about this prompt.
proc schedule { prefix model debug timing partition sched_pool backend_pool fallback_pool sched_uri timeout_ms interval_ms } {
    set vs [virtual name]
    set now [clock clicks -milliseconds]
    if { $prefix eq "" } {
        set last_call [table lookup -notouch "last_call_time_$vs"]
        if { $last_call ne "" && ($now - $last_call) < $interval_ms } {
            # A call for this virtual server happened moments ago: reuse its answer instead of asking again.
            set cached [table lookup -notouch "llm_nexthop_$vs"]
            if { $debug } { log local0.debug "llm: reusing cached answer '$cached' for $vs" }
            call /Common/irule_llm::select_pool $cached $backend_pool $fallback_pool
            return
        }
    }
    table set "last_call_time_$vs" $now 60

    set schedulers [call /Common/irule_llm::schedulers $sched_pool $debug]
    if { [llength $schedulers] == 0 } {
        # No usable scheduler: the request goes to the virtual server's default pool, BIG-IP balances it.
        return
    }
    set candidates [call /Common/irule_llm::member_strings [active_members -list $backend_pool]]
    if { [llength $candidates] == 0 } {
        if { $debug } { log local0.debug "llm: no active member in $backend_pool" }
        return
    }
    set payload [call /Common/irule_llm::with_hints [call /Common/irule_llm::build_sched_payload $backend_pool $partition $candidates] $prefix $model]
    set started [clock clicks -milliseconds]
    set response ""
    foreach sched $schedulers {
        set response [call /Common/irule_llm::http_req $sched $sched_uri $payload $timeout_ms $debug]
        if { [call /Common/irule_llm::http_status $response] ne "" } {
            break
        }
        if { $debug } { log local0.debug "llm: scheduler $sched did not answer" }
    }
    set answer [call /Common/irule_llm::decide $response $candidates $debug]
    table set "llm_nexthop_$vs" $answer 60
    call /Common/irule_llm::select_pool $answer $backend_pool $fallback_pool
    if { $timing } {
        set total_duration [expr { [clock clicks -milliseconds] - $started }]
        log local0.info "Scheduler total duration: ${total_duration}ms (from connection to pool selection)"
    }
}

# The sideband destinations to try, in order (pick_schedulers); none when no scheduler is active.
proc schedulers { sched_pool debug } {
    set schedulers [call /Common/irule_llm::pick_schedulers [active_members -list $sched_pool]]
    if { [llength $schedulers] == 0 && $debug } {
        log local0.debug "llm: no active member in $sched_pool"
    }
    return $schedulers
}

# Active scheduler members ({addr port} ...) -> the sideband destinations to try, in order: a random one
# first, then the next one (wrapping around) as the single retry. At most two, fewer when fewer are active.
proc pick_schedulers { members } {
    set count [llength $members]
    if { $count == 0 } {
        return [list]
    }
    set first [expr { int(rand() * $count) }]
    set out [list [call /Common/irule_llm::sched_destination [lindex $members $first]]]
    if { $count > 1 } {
        lappend out [call /Common/irule_llm::sched_destination [lindex $members [expr { ($first + 1) % $count }]]]
    }
    return $out
}

# "addr port" (an active_members -list entry) -> sideband destination: "IPv4:port" or "IPv6.port".
proc sched_destination { member } {
    set addr [lindex $member 0]
    set port [lindex $member 1]
    if { [string first ":" $addr] >= 0 } {
        return "$addr.$port"
    }
    return "$addr:$port"
}

# active_members -list output ({addr port} ...) -> the "addr:port" strings the scheduler expects.
proc member_strings { members } {
    set out [list]
    foreach member $members {
        lappend out "[lindex $member 0]:[lindex $member 1]"
    }
    return $out
}

# The JSON body, built exactly like the original's (no spaces, no model field).
proc build_sched_payload { pool_name partition candidates } {
    set quoted [list]
    foreach candidate $candidates {
        lappend quoted "\"$candidate\""
    }
    return [format {{"pool_name":"%s","partition":"%s","members":[%s]}} $pool_name $partition [join $quoted ","]]
}

# The request bytes, exactly as the original sends them: HTTP/1.0, no Host header, Connection: close.
proc build_request { uri payload } {
    return "POST $uri HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: [string length $payload]\r\nConnection: close\r\n\r\n$payload"
}

proc http_req { dest uri payload timeout_ms debug } {
    return [call /Common/irule_llm::request $dest [call /Common/irule_llm::build_request $uri $payload] $timeout_ms $debug]
}

# One sideband exchange; returns whatever was received ("" on failure). The connection is closed on every path.
proc request { dest data timeout_ms debug } {
    if { [catch { connect -protocol TCP -timeout $timeout_ms -idle 1 -status conn_status $dest } conn] || $conn eq "" } {
        if { $debug } { log local0.debug "llm: connect to $dest failed" }
        return ""
    }
    set response ""
    if { [catch { send -timeout $timeout_ms -status send_status $conn $data } sent] == 0
         && [info exists send_status] && $send_status eq "sent" && $sent == [string length $data] } {
        if { [catch { recv -timeout $timeout_ms -status recv_status 1000 $conn } response] } {
            set response ""
        }
        if { $debug } { log local0.debug "llm: received [string length $response] bytes from $dest" }
    } elseif { $debug } {
        log local0.debug "llm: send to $dest failed"
    }
    catch { close $conn }
    return $response
}

# The status code of a raw HTTP response (2nd token of the first line), "" when no complete header arrived.
proc http_status { response } {
    set split_at [string first "\r\n\r\n" $response]
    if { $split_at < 0 } {
        return ""
    }
    set status_line [lindex [split [string range $response 0 [expr { $split_at - 1 }]] "\r\n"] 0]
    return [lindex [split $status_line " "] 1]
}

# The original's parsing: returns {nexthop status}: {0 0} default pool, {0 1} fallback pool, {addr:port 200}.
proc parse_response { response } {
    if { [call /Common/irule_llm::http_status $response] ne "200" } {
        return [list 0 0]
    }
    set body [string trim [string range $response [expr { [string first "\r\n\r\n" $response] + 4 }] end]]
    if { $body eq "none" } {
        return [list 0 0]
    }
    if { $body eq "fallback" } {
        return [list 0 1]
    }
    if { ![call /Common/irule_llm::looks_like_member $body] } {
        # e.g. request_has_no_model_name, or an error page from something that is not the scheduler.
        return [list 0 0]
    }
    return [list $body 200]
}

# True for "IPv4[%rd]:port" and "IPv6[%rd]:port" with a port in 1..65535.
proc looks_like_member { text } {
    if { ![regexp {^(([0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)(%[0-9]{1,5})?:([0-9]{1,5})$} $text -> addr - - port] } {
        return 0
    }
    # scan, not expr on the raw digits: Tcl reads a leading 0 as octal ("08000" would raise an error).
    scan $port %d port
    return [expr { $port >= 1 && $port <= 65535 }]
}

# What to do with a scheduler response: a member of `candidates`, "fallback", or 0 (default pool).
proc decide { response candidates debug } {
    set parsed [call /Common/irule_llm::parse_response $response]
    set nexthop [lindex $parsed 0]
    if { $nexthop ne "0" } {
        if { [lsearch -exact $candidates $nexthop] >= 0 } {
            return $nexthop
        }
        # Never pin to something BIG-IP did not offer: `pool ... member` would fail on it.
        if { $debug } { log local0.debug "llm: scheduler answered $nexthop, not an active member" }
        return 0
    }
    if { [lindex $parsed 1] == 1 } {
        return "fallback"
    }
    if { $debug } { log local0.debug "llm: scheduler answered none or failed, default load balancing" }
    return 0
}

# Apply an answer of `decide` (or its cached copy).
proc select_pool { answer backend_pool fallback_pool } {
    if { $answer eq "fallback" } {
        pool $fallback_pool
    } elseif { $answer ne "" && $answer ne "0" } {
        set sep [string last ":" $answer]
        pool $backend_pool member [string range $answer 0 [expr { $sep - 1 }]] [string range $answer [expr { $sep + 1 }] end]
    } else {
        pool $backend_pool
    }
}

# ---- prefix hints (prefix_hints 1; wire contract in deploy/f5/README.md) ------------------------------------
# How many body bytes to collect: min(Content-Length, cap, 32768), or 0 = no hint. Only a body with a plain
# Content-Length is read: a chunked body, one announced with "Expect: 100-continue" (the client waits for the
# server before sending it) and a missing or unreadable length are passed on untouched.
proc collect_length { content_length chunked expect cap } {
    if { $chunked || $expect || ![string is digit -strict $content_length] || [string length $content_length] > 12 } {
        return 0
    }
    if { ![string is digit -strict $cap] || [string length $cap] > 12 } {
        return 0
    }
    # scan, not expr on the raw digits: Tcl reads a leading 0 as octal.
    scan $content_length %d length
    scan $cap %d limit
    if { $limit > 32768 } {
        set limit 32768
    }
    if { $length < $limit } {
        return $length
    }
    return $limit
}

# The chained fingerprints of the body's first min(cap, 32768) bytes, as the inside of a JSON array:
# block i (512 bytes) gives sha1(digest of block i-1 . block i), so each one covers every byte before it; the
# first 8 bytes of each 20-byte digest go out as 16 lowercase hex digits. A trailing partial block is not sent (as an
# engine's prefix cache, which only shares full blocks). "" when the body is shorter than one block.
proc prefix_fingerprints { body cap } {
    set usable [string length $body]
    if { [string is digit -strict $cap] && [string length $cap] <= 12 } {
        scan $cap %d limit
        if { $limit < $usable } {
            set usable $limit
        }
    }
    set count [expr { $usable / 512 }]
    if { $count > 64 } {
        set count 64
    }
    set out [list]
    set digest ""
    for { set i 0 } { $i < $count } { incr i } {
        set digest [sha1 "$digest[string range $body [expr { $i * 512 }] [expr { $i * 512 + 511 }]]"]
        binary scan $digest H16 hex
        lappend out "\"$hex\""
    }
    return [join $out ","]
}

# The value of the body's first "model" key when it is a plain model name (letters, digits and ._:/@+-, at
# most 256 characters); "" otherwise. Anything else would need JSON escaping, so it is left out.
proc body_model { body } {
    # string first bounds the regexp to a few hundred bytes instead of the whole collected body.
    set at [string first {"model"} $body]
    if { $at < 0 || ![regexp {^"model"[ \t\r\n]*:[ \t\r\n]*"([^"\\]*)"} [string range $body $at [expr { $at + 300 }]] -> model] } {
        return ""
    }
    if { [string length $model] > 256 || ![regexp {^[A-Za-z0-9._:/@+-]+$} $model] } {
        return ""
    }
    return $model
}

# The select JSON with the optional "model" and "prefix" fields; without hints the payload is left as built.
proc with_hints { payload prefix model } {
    if { $model eq "" && $prefix eq "" } {
        return $payload
    }
    set extra ""
    if { $model ne "" } {
        append extra ",\"model\":\"$model\""
    }
    if { $prefix ne "" } {
        append extra ",\"prefix\":\[$prefix\]"
    }
    return "[string range $payload 0 end-1]$extra\}"
}

select
    storefront_id,
    cast(created_at at time zone 'UTC' as date) as day,
    total_currency as currency,
    count(*) as orders,
    sum(total_value) as revenue,
    cast(sum(total_quantity) as bigint) as quantity
from {{ ref('stg_orders') }}
where status in {{ sold_statuses() }}
group by all
order by storefront_id, day, currency
